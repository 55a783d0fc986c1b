"""How ``serve-mcp``'s building tools keep a long call alive: progress while they wait, an early answer when
the caller does not want to wait, and a cancellation that stops the wait but never the build.

A create, start, restart or update waits minutes for a build and an agent; MCP clients give up on a silent
request long before (the official TypeScript client after 60 s, unless progress resets its clock). A
`LongCall` hears the lifecycle's steps and turns them into MCP progress notifications, at once on each
step and again on a heartbeat in between.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

import anyio
import structlog

from chat_mcp_primer._tasks import TaskGroup, run_in_own_task
from chat_mcp_primer.clock import Clock, tags
from chat_mcp_primer.workspace.coder import (
    Action,
    AgentStatus,
    JobStatus,
    LifecycleObserver,
    LifecycleOutcome,
    Operation,
    Transition,
    Workspace,
    WorkspaceAgent,
    WorkspaceBuild,
)

# At most this many seconds pass between two progress notifications while a tool waits. The issue asks
# for at least one every 5 s; 4 s keeps that with room for a slow send, and is far inside the 60 s after
# which the TypeScript client gives up and the 30-60 s idle timeouts of proxies in front of an HTTP server.
PROGRESS_INTERVAL_SECONDS = 4.0

T = TypeVar("T")

_log = structlog.get_logger("chat_mcp_primer.serve_mcp")

ProgressSender = Callable[[float, str], Awaitable[None]]
"""Sends one progress notification (a value that only grows, and a message); a no-op without a token."""


class Phase(StrEnum):
    """What a building tool is waiting for; the first word of every progress message."""

    BUILD = "build"
    AGENT = "agent"
    STARTUP_SCRIPTS = "startup scripts"


# The action of an operation whose start build was posted (not joined): what the early answer reports.
_POSTED_ACTION = {
    Operation.CREATE: Action.CREATED,
    Operation.START: Action.STARTED,
    Operation.RESTART: Action.RESTARTED,
    Operation.UPDATE: Action.UPDATED,
}


@dataclass(frozen=True, slots=True)
class _Step:
    phase: Phase
    detail: str
    since: float  # on the call's clock


class LongCall(LifecycleObserver):
    """One building tool call in progress: hears the lifecycle's steps and reports them as progress.

    `keep_alive` runs the call's operation with a heartbeat beside it, in a task group that ends with the
    call: a notification at once for each step (build, agent, startup scripts) and another every
    ``interval`` seconds of the clock in between. With ``return_early``, the wait ends as soon as the
    build that brings the workspace up is posted or joined (a stop, or someone else's build, is still
    waited for first: Coder takes no start before they end); `early_outcome` then says what was done.
    A cancellation of the call propagates; it is logged with the build it leaves running in Coder.
    """

    def __init__(
        self,
        operation: Operation,
        clock: Clock,
        send: ProgressSender,
        *,
        interval: float = PROGRESS_INTERVAL_SECONDS,
        return_early: bool = False,
    ) -> None:
        self.operation = operation
        self.clock = clock
        self._send = send
        self._interval = interval
        self._return_early = return_early
        self._step = _Step(Phase.BUILD, f"preparing the {operation.value}", clock.now())
        self._sent = 0
        self._wake = anyio.CancelScope()
        self._waiting = anyio.CancelScope()
        self.workspace: Workspace | None = None
        self.build: WorkspaceBuild | None = None
        self.template_version_id: str | None = None
        self._early: Action | None = None

    # -- the lifecycle's steps ------------------------------------------------------------------------

    def version_chosen(self, workspace: Workspace, version_id: str) -> None:
        self.workspace, self.template_version_id = workspace, version_id

    def awaiting_build(self, workspace: Workspace, build: WorkspaceBuild) -> None:
        detail = f"waiting for the {_name(build)} already running on {workspace.name}"
        self._heard(workspace, build, Phase.BUILD, detail)

    def build_joined(self, workspace: Workspace, build: WorkspaceBuild) -> None:
        self._heard(workspace, build, Phase.BUILD, f"waiting for the {_name(build)} of {workspace.name}, in progress")
        self._end_early(Action.ALREADY_BUILDING)

    def build_posted(self, workspace: Workspace, build: WorkspaceBuild) -> None:
        self._heard(workspace, build, Phase.BUILD, f"waiting for the {_name(build)} of {workspace.name}")
        if build.transition is Transition.START:
            self._end_early(_POSTED_ACTION[self.operation])

    def build_progress(self, workspace: Workspace, build: WorkspaceBuild) -> None:
        if build.job.status.active:  # how it ended is the call's answer
            status = "queued" if build.job.status is JobStatus.PENDING else build.job.status.value
            self._heard(workspace, build, Phase.BUILD, f"the {_name(build)} of {workspace.name} is {status}")

    def agent_selected(self, workspace: Workspace, build: WorkspaceBuild, agent: WorkspaceAgent) -> None:
        self._heard(workspace, build, Phase.AGENT, f"waiting for agent {agent.name} of {workspace.name} to connect")

    def agent_progress(self, workspace: Workspace, agent: WorkspaceAgent) -> None:
        if agent.status is not AgentStatus.CONNECTED:  # connected: `agent_connected` tells the next phase
            detail = f"agent {agent.name} of {workspace.name} is {agent.status.value}"
            self._heard(workspace, self.build, Phase.AGENT, detail)

    def agent_connected(self, workspace: Workspace, agent: WorkspaceAgent) -> None:
        detail = f"agent {agent.name} of {workspace.name} connected; waiting for its startup scripts"
        self._heard(workspace, self.build, Phase.STARTUP_SCRIPTS, detail)

    def _heard(self, workspace: Workspace, build: WorkspaceBuild | None, phase: Phase, detail: str) -> None:
        self.workspace, self.build = workspace, build
        self._step = _Step(phase, detail, self.clock.now())
        self._wake.cancel()  # report the step now, not at the next heartbeat

    def _end_early(self, action: Action) -> None:
        if self._return_early:
            self._early = action
            self._waiting.cancel()

    # -- the call ---------------------------------------------------------------------------------------

    async def keep_alive(self, tool: str, operation: Callable[[LongCall], Awaitable[T]]) -> T | None:
        """The operation's answer, with progress sent meanwhile; None when it stopped waiting early (then
        `early_outcome` says what it did)."""
        try:
            async with TaskGroup() as group:
                group.start_soon(self._heartbeat)
                try:
                    # In a task of its own, as every entry point runs library code: a cancellation of the
                    # SDK's task (the client cancelled) is then never undone by the scopes the operation leaves.
                    return await run_in_own_task(lambda: self._until_early(operation))
                finally:
                    group.cancel()
        except anyio.get_cancelled_exc_class():
            # MCP answers no cancelled request, so the log is where the build left running is told.
            _log.warning(
                "serve_mcp.call_cancelled",
                tool=tool,
                workspace=self.workspace.name if self.workspace is not None else None,
                build_id=self.build.id if self.build is not None else None,
                note="stopped waiting; the build continues in Coder",
            )
            raise

    async def _until_early(self, operation: Callable[[LongCall], Awaitable[T]]) -> T | None:
        with self._waiting:
            return await operation(self)
        return None

    def early_outcome(self) -> LifecycleOutcome:
        """What the operation had done when it stopped waiting: the build it posted or joined, running on."""
        assert self._early is not None  # only the early end cancels the wait without an outcome
        return LifecycleOutcome(
            operation=self.operation,
            action=self._early,
            workspace=self.workspace,
            build=self.build,
            template_version_id=self.template_version_id if self.operation is Operation.UPDATE else None,
        )

    async def _heartbeat(self) -> None:
        while True:
            # A fresh scope before sending: a step heard while the send is in flight cuts the next pause short.
            self._wake = anyio.CancelScope()
            step = self._step
            self._sent += 1
            elapsed = self.clock.now() - step.since
            await self._send(float(self._sent), f"{step.phase.value}: {step.detail} ({elapsed:.0f} s)")
            with self._wake:
                await self.clock.sleep(self._interval, *tags.SERVE_MCP_PROGRESS)


def _name(build: WorkspaceBuild) -> str:
    return f"{build.transition.value} build {build.id}"
