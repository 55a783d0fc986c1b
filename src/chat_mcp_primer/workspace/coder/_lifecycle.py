"""`CoderLifecycle`: create, start, stop, restart and update a workspace, with their waits, written once.

The chat's tools, ``serve-mcp`` and ``update-workspace`` are adapters over this service: they parse their
arguments, call an operation and render its `LifecycleOutcome`. Every wait is on the client's clock and
within `ReadinessSettings`; the steps are Coder's own (its UI and CLI): wait for an active build before
posting another, stop before starting on a new version, then wait for the build and for the agent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from chat_mcp_primer._errors import ToolArgumentError
from chat_mcp_primer.clock import Clock
from chat_mcp_primer.workspace.coder._client import CoderClient
from chat_mcp_primer.workspace.coder._domain import (
    AgentStatus,
    JobStatus,
    Transition,
    Workspace,
    WorkspaceAgent,
    WorkspaceBuild,
)
from chat_mcp_primer.workspace.coder._errors import (
    BuildActiveError,
    BuildError,
    CoderNotFoundError,
    CoderWorkspaceDeletedError,
)
from chat_mcp_primer.workspace.coder._outcomes import (
    Action,
    CreateRequest,
    Failure,
    FailureKind,
    LifecycleObserver,
    LifecycleOutcome,
    Operation,
    SilentObserver,
)
from chat_mcp_primer.workspace.coder._readiness import (
    AgentReadiness,
    AgentSelectionError,
    AgentState,
    ReadinessSettings,
    select_agent,
    wait_for_agent_readiness,
    wait_for_build,
)
from chat_mcp_primer.workspace.coder._recipes import (
    active_version,
    build_failure,
    describe_build,
    is_running,
    is_stopped,
    version_refusal,
)


def _require_uuid(argument: str, value: str, hint: str) -> None:
    try:
        uuid.UUID(value)
    except ValueError:
        raise ToolArgumentError(f"{argument} must be a UUID ({hint}), got {value!r}") from None


class _Failed(Exception):
    """A step's failure, carried to the operation's boundary, where it becomes the outcome's `Failure`."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


@dataclass(slots=True)
class _Call:
    """One operation in progress: what it has done so far, so a failure still reports it."""

    operation: Operation
    observer: LifecycleObserver
    action: Action = Action.NOTHING
    workspace: Workspace | None = None
    build: WorkspaceBuild | None = None
    stop_build: WorkspaceBuild | None = None
    readiness: AgentReadiness | None = None
    template_version_id: str | None = None
    moved_to_active_version: bool = False
    agent: WorkspaceAgent | None = None

    def outcome(self, failure: Failure | None = None) -> LifecycleOutcome:
        return LifecycleOutcome(
            operation=self.operation,
            action=self.action,
            workspace=self.workspace,
            build=self.build,
            stop_build=self.stop_build,
            agent=self.agent,
            readiness=self.readiness,
            template_version_id=self.template_version_id,
            moved_to_active_version=self.moved_to_active_version,
            failure=failure,
        )


class CoderLifecycle:
    """The lifecycle operations on one Coder deployment, each returning a `LifecycleOutcome`.

    Guarantees: a build is never posted while another is active (the operation waits for it, and a 409
    "build already active" is waited out once); an update or a restart never starts after its stop failed;
    ``observer.agent_waited`` is called on every path that waited for an agent, whatever the outcome.
    Failures the caller can act on are the outcome's ``failure``; Coder's own errors (a rejected token, an
    unreachable deployment) raise `CoderError`; cancellation propagates. Operations are not serialised
    here: callers hold a lock per chat or per workspace (`KeyedLocks`).

    ``stop_build_timeout``, when given, bounds stop builds instead of ``readiness.build_timeout``: a stop
    tears down less than a start creates, and ``update-workspace`` gives each its own budget.
    """

    def __init__(
        self,
        client: CoderClient,
        readiness: ReadinessSettings | None = None,
        *,
        clock: Clock | None = None,
        stop_build_timeout: float | None = None,
    ) -> None:
        self.client = client
        self.readiness = readiness or ReadinessSettings()
        self.clock = clock or client.clock
        self._stop_readiness = (
            self.readiness
            if stop_build_timeout is None
            else dataclasses.replace(self.readiness, build_timeout=stop_build_timeout)
        )

    # -- the operations -----------------------------------------------------------------------------

    async def create(
        self, request: CreateRequest, *, reuse: str | None = None, observer: LifecycleObserver | None = None
    ) -> LifecycleOutcome:
        """Create a workspace and wait for its build and agent.

        A ``template_id`` or ``preset_id`` that is not a UUID raises `ToolArgumentError` before Coder is
        asked (Coder would answer "Request body must be valid JSON", which names neither). With ``reuse``
        (the chat's workspace id), that workspace is used instead when it is building
        (``ALREADY_BUILDING``) or running with a connected agent (``ALREADY_RUNNING``); a stopped or
        failed one is `FailureKind.NOT_RUNNING`; a deleted one, or one whose agent is dead, is replaced.
        """
        _require_uuid("template_id", request.template_id, "call list_templates to find one")
        if request.preset_id is not None:
            _require_uuid("preset_id", request.preset_id, "or leave it out")
        return await self._run(Operation.CREATE, observer, lambda call: self._create(call, request, reuse))

    async def start(self, workspace_id: str, *, observer: LifecycleObserver | None = None) -> LifecycleOutcome:
        """Start the workspace unless it runs or is starting, then wait for its agent (on every path).

        A template that requires its active version moves an outdated workspace onto it.
        """
        return await self._run(Operation.START, observer, lambda call: self._start(call, workspace_id))

    async def stop(self, workspace_id: str, *, observer: LifecycleObserver | None = None) -> LifecycleOutcome:
        """Stop the workspace (after any active build) and wait for the stop; nothing when already stopped."""
        return await self._run(Operation.STOP, observer, lambda call: self._stop(call, workspace_id))

    async def restart(self, workspace_id: str, *, observer: LifecycleObserver | None = None) -> LifecycleOutcome:
        """Stop the workspace if it runs, start it on the same version, and wait for its agent."""
        return await self._run(Operation.RESTART, observer, lambda call: self._restart(call, workspace_id))

    async def update(
        self,
        workspace_id: str,
        template_version_id: str | None = None,
        *,
        force: bool = False,
        observer: LifecycleObserver | None = None,
    ) -> LifecycleOutcome:
        """Move the workspace onto ``template_version_id`` (default: the template's active version, read
        from the template when the workspace does not name it): stop it if it runs, start it on that
        version, wait for its agent.

        A version that cannot be built is refused before anything is built. A workspace already running
        the version is left alone (``UP_TO_DATE``; its agent is still waited for) unless ``force``.
        """
        return await self._run(
            Operation.UPDATE, observer, lambda call: self._update(call, workspace_id, template_version_id, force)
        )

    async def delete(self, workspace_id: str, *, observer: LifecycleObserver | None = None) -> LifecycleOutcome:
        """Delete the workspace (after any active build) and wait for the delete build."""
        return await self._run(Operation.DELETE, observer, lambda call: self._delete(call, workspace_id))

    # -- the operations' steps ----------------------------------------------------------------------

    async def _run(
        self,
        operation: Operation,
        observer: LifecycleObserver | None,
        body: Callable[[_Call], Awaitable[None]],
    ) -> LifecycleOutcome:
        call = _Call(operation, observer or SilentObserver())
        try:
            await body(call)
        except _Failed as failed:
            return call.outcome(failed.failure)
        return call.outcome()

    async def _create(self, call: _Call, request: CreateRequest, reuse: str | None) -> None:
        if reuse is not None and await self._reuse(call, reuse):
            return
        workspace = await self.client.create_workspace(
            name=request.name,
            template_id=request.template_id,
            preset_id=request.preset_id,
            parameters=dict(request.parameters),
        )
        call.workspace, call.action, call.build = workspace, Action.CREATED, workspace.latest_build
        call.observer.build_posted(workspace, workspace.latest_build)
        await self._ready(call, await self._finish(call, workspace, workspace.latest_build), fresh=True)

    async def _reuse(self, call: _Call, workspace_id: str) -> bool:
        """Whether the chat's existing workspace answers the create (see `create`)."""
        try:
            workspace = await self.client.workspace(workspace_id)
        except (CoderNotFoundError, CoderWorkspaceDeletedError):
            return False
        build = workspace.latest_build
        if build.transition is Transition.DELETE:
            return False
        if build.job.status.active and build.transition is Transition.START:
            call.workspace = workspace
            await self._join(call, workspace)
            return True
        if build.transition is Transition.STOP or build.job.status is not JobStatus.SUCCEEDED:
            call.workspace = workspace
            raise _Failed(Failure(FailureKind.NOT_RUNNING, "the workspace exists but is not running"))
        if any(agent.status is AgentStatus.CONNECTED for agent in build.agents):
            call.workspace, call.action, call.build = workspace, Action.ALREADY_RUNNING, build
            await self._ready(call, build, fresh=False)
            return True
        return False  # running, but its agent is dead: make a new one

    async def _start(self, call: _Call, workspace_id: str) -> None:
        workspace = await self._read(call, workspace_id)
        build = workspace.latest_build
        if build.job.status.active and build.transition is Transition.START:
            await self._join(call, workspace)
            return
        workspace = await self._settle(call, workspace)
        if is_running(workspace):
            # Already running: wait for readiness and notify anyway, so the primer runs (upstream gap 1).
            call.action, call.build = Action.ALREADY_RUNNING, workspace.latest_build
            await self._ready(call, workspace.latest_build, fresh=False)
            return
        call.action = Action.STARTED
        version = None
        if workspace.template_require_active_version and workspace.outdated:
            version = await active_version(self.client, workspace)
            call.template_version_id, call.moved_to_active_version = version, True
        started = await self._build(call, workspace, Transition.START, version)
        await self._ready(call, started, fresh=True)

    async def _stop(self, call: _Call, workspace_id: str) -> None:
        workspace = await self._settle(call, await self._read(call, workspace_id))
        if is_stopped(workspace):
            call.action = Action.ALREADY_STOPPED
            return
        call.action = Action.STOPPED
        await self._build(call, workspace, Transition.STOP)

    async def _restart(self, call: _Call, workspace_id: str) -> None:
        workspace = await self._settle(call, await self._read(call, workspace_id))
        call.action = Action.RESTARTED
        if is_running(workspace):
            await self._build(call, workspace, Transition.STOP)
        started = await self._build(call, workspace, Transition.START)
        await self._ready(call, started, fresh=True)

    async def _delete(self, call: _Call, workspace_id: str) -> None:
        workspace = await self._settle(call, await self._read(call, workspace_id))
        call.action = Action.DELETED
        await self._build(call, workspace, Transition.DELETE)

    async def _update(self, call: _Call, workspace_id: str, version_id: str | None, force: bool) -> None:
        workspace = await self._read(call, workspace_id)
        version_id = version_id or await active_version(self.client, workspace)
        call.template_version_id = version_id
        call.observer.version_chosen(workspace, version_id)
        refusal = await version_refusal(self.client, workspace, version_id)
        if refusal is not None:
            raise _Failed(Failure(FailureKind.VERSION_REFUSED, refusal))
        workspace = await self._settle(call, workspace)
        latest = workspace.latest_build
        if not force and is_running(workspace) and latest.template_version_id == version_id:
            call.action, call.build = Action.UP_TO_DATE, latest
            await self._ready(call, latest, fresh=False)
            return
        call.action = Action.UPDATED
        if is_running(workspace):
            await self._build(call, workspace, Transition.STOP)
        started = await self._build(call, workspace, Transition.START, version_id)
        await self._ready(call, started, fresh=True)

    # -- the shared steps ---------------------------------------------------------------------------

    async def _read(self, call: _Call, workspace_id: str) -> Workspace:
        try:
            workspace = await self.client.workspace(workspace_id)
        except (CoderNotFoundError, CoderWorkspaceDeletedError):
            raise _Failed(Failure(FailureKind.DELETED, "the workspace was deleted")) from None
        call.workspace = workspace
        return workspace

    def _readiness_for(self, build: WorkspaceBuild) -> ReadinessSettings:
        return self._stop_readiness if build.transition is Transition.STOP else self.readiness

    async def _settle(self, call: _Call, workspace: Workspace) -> Workspace:
        """Wait for the workspace's active build, if any, and return the workspace as it is then.

        A failed or canceled build is fine here: it is history, and the operation decides what comes next.
        One still active when its budget ran out is `FailureKind.STILL_BUILDING`.
        """
        build = workspace.latest_build
        if not build.job.status.active:
            return workspace
        call.observer.awaiting_build(workspace, build)
        readiness = self._readiness_for(build)
        with contextlib.suppress(BuildError):
            await wait_for_build(self.client, build, self.clock, readiness, on_progress=self._told(call, workspace))
        workspace = await self.client.workspace(workspace.id)
        call.workspace = workspace
        latest = workspace.latest_build
        if latest.job.status.active:
            message = (
                f"the workspace's {describe_build(latest)} is still {latest.status.value} after "
                f"{readiness.build_timeout:g} s; try again later"
            )
            failure = Failure(FailureKind.STILL_BUILDING, message, build_id=latest.id, transition=latest.transition)
            raise _Failed(failure)
        return workspace

    async def _join(self, call: _Call, workspace: Workspace) -> None:
        """Adopt the start build in progress: wait for it, then for its agent."""
        build = workspace.latest_build
        call.action, call.build = Action.ALREADY_BUILDING, build
        call.observer.build_joined(workspace, build)
        await self._ready(call, await self._finish(call, workspace, build), fresh=False)

    async def _build(
        self, call: _Call, workspace: Workspace, transition: Transition, version_id: str | None = None
    ) -> WorkspaceBuild:
        """Post a build (waiting out a 409 "build already active" once), tell the observer, and wait for it."""
        try:
            build = await self.client.create_build(workspace.id, transition, template_version_id=version_id)
        except BuildActiveError:
            await self._settle(call, await self.client.workspace(workspace.id))
            build = await self.client.create_build(workspace.id, transition, template_version_id=version_id)
        call.build = build
        if transition is Transition.STOP:
            call.stop_build = build
        call.observer.build_posted(workspace, build)
        return await self._finish(call, workspace, build)

    async def _finish(self, call: _Call, workspace: Workspace, build: WorkspaceBuild) -> WorkspaceBuild:
        """The build once it succeeded; its failure, cancellation or timeout as the operation's failure."""
        readiness = self._readiness_for(build)
        try:
            return await wait_for_build(
                self.client, build, self.clock, readiness, on_progress=self._told(call, workspace)
            )
        except BuildError as exc:
            raise _Failed(build_failure(exc, build.transition)) from None

    @staticmethod
    def _told(call: _Call, workspace: Workspace) -> Callable[[WorkspaceBuild], None]:
        """What tells the observer of a waited build's progress on ``workspace``."""
        return lambda build: call.observer.build_progress(workspace, build)

    async def _ready(self, call: _Call, build: WorkspaceBuild, *, fresh: bool) -> None:
        """Pick the chat's agent in a finished build and wait until it is ready (see `select_agent`)."""
        if not build.agents:
            call.readiness = AgentReadiness(AgentState.NO_AGENT)
            return
        try:
            agent = select_agent(build.agents)
        except AgentSelectionError as exc:
            call.readiness = AgentReadiness(AgentState.SELECTION_ERROR, error=str(exc))
            return
        call.agent = agent
        workspace = call.workspace
        assert workspace is not None  # every path reads or creates the workspace before its agent
        call.observer.agent_selected(workspace, build, agent)
        readiness = await wait_for_agent_readiness(
            self.client,
            build.id,
            agent.id,
            self.clock,
            self.readiness,
            on_connected=lambda connected: call.observer.agent_connected(workspace, connected),
            on_progress=lambda seen: call.observer.agent_progress(workspace, seen),
        )
        call.readiness = readiness
        call.observer.agent_waited(agent, readiness, fresh=fresh)
