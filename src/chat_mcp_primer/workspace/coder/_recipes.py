"""Build choreography shared by the chat tools and the CLI: settle, build when idle, stop, update."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from chat_mcp_primer.clock import Clock
from chat_mcp_primer.workspace.coder._client import CoderClient
from chat_mcp_primer.workspace.coder._domain import JobStatus, Transition, Workspace, WorkspaceAgent, WorkspaceBuild
from chat_mcp_primer.workspace.coder._errors import (
    BuildActiveError,
    BuildError,
    CoderNotFoundError,
    CoderValidationError,
)
from chat_mcp_primer.workspace.coder._readiness import (
    AgentSelectionError,
    ReadinessSettings,
    select_agent,
    wait_for_agent_ready,
    wait_for_build,
)

Result = dict[str, Any]
"""A tool result in the reference's keys: ``build_id``, ``error``, ``agent_status``, ``startup_scripts``..."""


def is_running(workspace: Workspace) -> bool:
    build = workspace.latest_build
    return build.transition is Transition.START and build.job.status is JobStatus.SUCCEEDED


def is_stopped(workspace: Workspace) -> bool:
    build = workspace.latest_build
    return build.transition is Transition.STOP and build.job.status is JobStatus.SUCCEEDED


async def settle(client: CoderClient, workspace: Workspace, clock: Clock, readiness: ReadinessSettings) -> Workspace:
    """Wait for the workspace's active build, if any, and return the workspace as it is then.

    A failed or canceled build is fine here: it is history, and the caller decides what comes next.
    """
    build = workspace.latest_build
    if build.job.status.active:
        with contextlib.suppress(BuildError):
            await wait_for_build(client, build, clock, readiness)
        workspace = await client.workspace(workspace.id)
    return workspace


async def build_when_idle(
    client: CoderClient,
    workspace: Workspace,
    transition: Transition,
    clock: Clock,
    readiness: ReadinessSettings,
    *,
    template_version_id: str | None = None,
) -> WorkspaceBuild:
    """Start a build; on 409 "build already active", wait for the active build and try once more."""
    try:
        return await client.create_build(workspace.id, transition, template_version_id=template_version_id)
    except BuildActiveError:
        await settle(client, await client.workspace(workspace.id), clock, readiness)
        return await client.create_build(workspace.id, transition, template_version_id=template_version_id)


async def version_refusal(client: CoderClient, workspace: Workspace, version_id: str) -> str | None:
    """Why ``workspace`` cannot move to template version ``version_id``, or None when it can."""
    try:
        version = await client.template_version(version_id)
    except (CoderNotFoundError, CoderValidationError):
        return f"template version {version_id!r} does not exist"
    if version.template_id != workspace.template_id:
        return f"template version {version_id!r} belongs to another template"
    if version.job.status is JobStatus.FAILED:
        return f"template version {version_id!r} failed to import"
    if version.job.status is not JobStatus.SUCCEEDED:
        return f"template version {version_id!r} is still importing; try again shortly"
    return None


def build_failure(exc: BuildError) -> Result:
    """The result keys for a build that did not succeed; ``build_id`` kept so a UI can show its logs."""
    result: Result = {"error": str(exc), "build_id": exc.build_id}
    if exc.job_error:
        result["job_error"] = exc.job_error
    if exc.error_code:
        result["error_code"] = exc.error_code
    return result


async def stop_and_wait(
    client: CoderClient,
    workspace: Workspace,
    clock: Clock,
    readiness: ReadinessSettings,
    *,
    on_build: Callable[[WorkspaceBuild], None] | None = None,
) -> Result:
    """Stop the workspace and wait for the stop: ``{"build_id"}``, or the failure with ``error``."""
    build = await build_when_idle(client, workspace, Transition.STOP, clock, readiness)
    if on_build is not None:
        on_build(build)
    try:
        await wait_for_build(client, build, clock, readiness)
    except BuildError as exc:
        return {**build_failure(exc), "error": f"stopping the workspace failed: {exc}"}
    return {"build_id": build.id}


async def ready_agent(
    client: CoderClient,
    build: WorkspaceBuild,
    clock: Clock,
    readiness: ReadinessSettings,
    *,
    on_agent: Callable[[WorkspaceAgent], None] | None = None,
) -> Result:
    """Pick the chat's agent in a finished build and wait until it is ready.

    ``{"build_id"}`` plus ``agent_status`` (``no_agent``, ``selection_error`` with ``agent_error``,
    ``not_ready``) or the startup-script keys; nothing more when the agent is ready. ``on_agent`` hears
    the agent once it is picked, before the wait.
    """
    result: Result = {"build_id": build.id}
    if not build.agents:
        result["agent_status"] = "no_agent"
        return result
    try:
        agent = select_agent(build.agents)
    except AgentSelectionError as exc:
        result.update(agent_status="selection_error", agent_error=str(exc))
        return result
    if on_agent is not None:
        on_agent(agent)
    result.update(await wait_for_agent_ready(client, build.id, agent.id, clock, readiness))
    return result


async def ready_after_build(
    client: CoderClient,
    build: WorkspaceBuild,
    clock: Clock,
    readiness: ReadinessSettings,
    *,
    on_agent: Callable[[WorkspaceAgent], None] | None = None,
) -> Result:
    """Wait for ``build``, then for its agent (`ready_agent`); a build failure as `build_failure`."""
    try:
        build = await wait_for_build(client, build, clock, readiness)
    except BuildError as exc:
        return build_failure(exc)
    return await ready_agent(client, build, clock, readiness, on_agent=on_agent)
