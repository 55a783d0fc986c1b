"""State as a pure function of the clock: jobs, builds, agents and apps at a given ``now``.

Nothing here has side effects or reads the clock itself; callers pass ``now``. That is what lets a
`MockClock` drive a served fake exactly, with no background task.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from chat_mcp_primer.testing._fake_coder._config import FakeAgent, FakeApp, FakeMcpServer
from chat_mcp_primer.testing._fake_coder._records import BuildRecord, JobPlan, ResourceRecord, WorkspaceRecord

ACTIVE_JOB_STATUSES = frozenset({"pending", "running", "canceling"})

# Build status from (job status, transition): Coder's `codersdk.WorkspaceStatus` derivation.
_BUILD_STATUS = {
    ("pending", "start"): "pending",
    ("pending", "stop"): "pending",
    ("pending", "delete"): "pending",
    ("running", "start"): "starting",
    ("running", "stop"): "stopping",
    ("running", "delete"): "deleting",
    ("succeeded", "start"): "running",
    ("succeeded", "stop"): "stopped",
    ("succeeded", "delete"): "deleted",
}
# Statuses that do not depend on the transition.
_SAME_FOR_EVERY_TRANSITION = frozenset({"canceling", "canceled", "failed"})
# Job statuses in which a build's resources (and the agents in them) exist.
_RESOURCES_VISIBLE = frozenset({"running", "canceling", "succeeded"})


@dataclass(frozen=True, slots=True)
class JobView:
    status: str
    created_at: float
    started_at: float | None
    completed_at: float | None
    canceled_at: float | None
    error: str | None
    error_code: str | None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_JOB_STATUSES


def job_view(plan: JobPlan, now: float) -> JobView:
    """A provisioner job at ``now``.

    Pending until picked up, running until done, then succeeded or failed. A cancel before the job was
    picked up completes it at once (``canceled``); a cancel while it runs reads ``canceling`` until the
    provisioner acknowledges it ``cancel_seconds`` later. Timestamps never lie in the future.
    """
    start = plan.started_at
    end = plan.finishes_at
    if plan.canceled_at is not None:
        requested = plan.canceled_at
        if requested < start:
            return JobView("canceled", plan.created_at, None, requested, requested, None, None)
        acknowledged = requested + plan.cancel_seconds
        if now < acknowledged:
            return JobView("canceling", plan.created_at, start, None, requested, None, None)
        return JobView("canceled", plan.created_at, start, acknowledged, requested, None, None)
    if now < start:
        return JobView("pending", plan.created_at, None, None, None, None, None)
    if now < end:
        return JobView("running", plan.created_at, start, None, None, None, None)
    if plan.failure is not None:
        failure = plan.failure
        return JobView("failed", plan.created_at, start, end, None, failure.error, failure.error_code or None)
    return JobView("succeeded", plan.created_at, start, end, None, None, None)


def build_status(job_status: str, transition: str) -> str:
    if job_status in _SAME_FOR_EVERY_TRANSITION:
        return job_status
    return _BUILD_STATUS[(job_status, transition)]


def visible_resources(build: BuildRecord, job: JobView) -> tuple[ResourceRecord, ...]:
    """A new build has no resources; they (and their agents) appear once its job runs."""
    return build.resources if job.status in _RESOURCES_VISIBLE else ()


def is_deleted(workspace: WorkspaceRecord, now: float) -> bool:
    """A workspace is deleted once a delete build of it has succeeded."""
    latest = workspace.latest_build
    return latest.transition == "delete" and job_view(latest.job, now).status == "succeeded"


@dataclass(frozen=True, slots=True)
class AgentView:
    status: str
    lifecycle_state: str
    created_at: float
    first_connected_at: float | None
    last_connected_at: float | None
    started_at: float | None
    ready_at: float | None
    ready_since: float | None
    health_reason: str | None

    @property
    def healthy(self) -> bool:
        return self.health_reason is None


def agent_view(agent: FakeAgent, job: JobView, now: float) -> AgentView:
    """An agent of a start build whose job is ``job``, at ``now``.

    It appears when the job starts running and connects ``connect_seconds`` after the job succeeded;
    never-connected agents read ``timeout`` once ``connection_timeout_seconds`` have passed since they
    appeared. The startup lifecycle runs from the connection on. ``ready_since`` is when the lifecycle
    reached ``ready`` (None if it has not).
    """
    appeared = job.started_at if job.started_at is not None else now
    connected = math.inf
    if job.status == "succeeded" and job.completed_at is not None and not agent.never_connects:
        connected = job.completed_at + agent.connect_seconds
    if now < connected:
        timeout = agent.connection_timeout_seconds
        status = "timeout" if timeout > 0 and now - appeared > timeout else "connecting"
        return AgentView(status, "created", appeared, None, None, None, None, None, "agent is not connected")
    finished = connected + agent.startup_seconds
    if now < finished:
        return AgentView("connected", "starting", appeared, connected, connected, connected, None, None, None)
    lifecycle, ready_at, ready_since = agent.startup_outcome, finished, None
    if lifecycle == "ready":
        ready_since = finished
    elif lifecycle == "start_timeout" and agent.ready_after_timeout_seconds is not None:
        late = finished + agent.ready_after_timeout_seconds
        if now >= late:
            lifecycle, ready_at, ready_since = "ready", late, late
    reason = {
        "start_timeout": "agent startup script timed out",
        "start_error": "agent startup script exited with an error",
    }.get(lifecycle)
    return AgentView("connected", lifecycle, appeared, connected, connected, connected, ready_at, ready_since, reason)


def mcp_server_up_at(server: FakeMcpServer, agent: AgentView) -> float:
    """When a workspace MCP server answers: its cold start after the agent became ready (inf: not yet known)."""
    if agent.ready_since is None:
        return math.inf
    return agent.ready_since + server.cold_start_seconds


def mcp_app_health(server: FakeMcpServer, agent: AgentView, now: float) -> str:
    if not server.healthcheck:
        return "disabled"
    return "healthy" if now >= mcp_server_up_at(server, agent) else "initializing"


def plain_app_health(app: FakeApp, agent: AgentView) -> str:
    if not app.healthcheck:
        return "disabled"
    return "healthy" if agent.ready_since is not None else "initializing"
