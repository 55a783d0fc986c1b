"""Waiting for a build to finish and for its agent to be ready, with the reference's budgets and result keys."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from chat_mcp_primer.clock import Clock, run_with_timeout, tags
from chat_mcp_primer.workspace.coder._client import CoderClient
from chat_mcp_primer.workspace.coder._domain import (
    AgentStatus,
    JobStatus,
    LifecycleState,
    WorkspaceAgent,
    WorkspaceBuild,
)
from chat_mcp_primer.workspace.coder._errors import (
    BuildCanceledError,
    BuildFailedError,
    BuildTimeoutError,
    CoderAuthError,
    CoderError,
    CoderNotFoundError,
    CoderPermissionError,
)

# Failures no amount of waiting fixes (a revoked token, a build that is gone): raised at once rather
# than spending the rest of a readiness budget.
_FINAL = (CoderAuthError, CoderPermissionError, CoderNotFoundError)

# The suffix that marks the agent a chat should use when a build has several.
CHAT_AGENT_SUFFIX = "-coderd-chat"


@dataclass(frozen=True, slots=True)
class ReadinessSettings:
    """Budgets for a build and its agent. The defaults are the reference's."""

    # Builds report progress through their job; 2 s polling shows it promptly without load on Coder.
    build_poll_interval: float = 2.0
    # Ten minutes covers image pulls and provisioning of large templates.
    build_timeout: float = 600.0
    # An agent that has not connected two minutes after its build succeeded is not coming.
    agent_online_timeout: float = 120.0
    agent_probe_interval: float = 2.0
    # One probe is one cheap read; longer than 5 s means Coder itself is struggling: probe again.
    agent_probe_timeout: float = 5.0
    # Startup scripts may install toolchains: ten minutes, independent of the connect budget.
    startup_scripts_timeout: float = 600.0
    lifecycle_poll_interval: float = 2.0


class AgentState(StrEnum):
    """How the wait for a build's agent ended. The values are the reference's result strings."""

    READY = "ready"
    # The build has no agent at all (a template without one): there is nothing to wait for.
    NO_AGENT = "no_agent"
    # The build's agents do not name one for the chat (see `select_agent`); nothing was waited for.
    SELECTION_ERROR = "selection_error"
    # The agent did not connect within ``agent_online_timeout``.
    NOT_CONNECTED = "not_ready"
    STARTUP_SCRIPTS_FAILED = "startup_scripts_failed"
    STARTUP_SCRIPTS_TIMEOUT = "startup_scripts_timeout"


@dataclass(frozen=True, slots=True)
class AgentReadiness:
    """The agent's readiness once a wait ended: its state, why it is not ready, and the lifecycle state
    it stopped in when its startup scripts failed."""

    state: AgentState
    error: str | None = None
    lifecycle_state: LifecycleState | None = None

    @property
    def ready(self) -> bool:
        return self.state is AgentState.READY

    def result_keys(self) -> dict[str, str | None]:
        """The reference's result keys for this readiness: none when ready, else ``agent_status`` (with
        ``agent_error``) or ``startup_scripts`` (with ``lifecycle_state`` when the scripts failed)."""
        match self.state:
            case AgentState.READY:
                return {}
            case AgentState.NO_AGENT:
                return {"agent_status": self.state.value}
            case AgentState.SELECTION_ERROR | AgentState.NOT_CONNECTED:
                return {"agent_status": self.state.value, "agent_error": self.error}
            case AgentState.STARTUP_SCRIPTS_FAILED:
                state = self.lifecycle_state.value if self.lifecycle_state is not None else None
                return {"startup_scripts": self.state.value, "lifecycle_state": state}
            case AgentState.STARTUP_SCRIPTS_TIMEOUT:
                return {"startup_scripts": self.state.value}


AGENT_READY = AgentReadiness(AgentState.READY)


class AgentSelectionError(CoderError):
    """The build's agents do not name one agent for the chat (none at all, or several marked for chats)."""


def select_agent(agents: Sequence[WorkspaceAgent]) -> WorkspaceAgent:
    """The agent a chat works with: among root agents (no parent) ordered as the reference orders them
    where the REST API can see (the lower-cased name, then the name, then the id: Coder's API has no
    display order), the one whose name ends in ``-coderd-chat`` (case-insensitive), else the first.

    Raises `AgentSelectionError` when there is no root agent or several are marked for chats.
    """
    roots = sorted((a for a in agents if a.parent_id is None), key=lambda a: (a.name.lower(), a.name, a.id))
    if not roots:
        raise AgentSelectionError("the workspace build has no root agent")
    marked = [a for a in roots if a.name.casefold().endswith(CHAT_AGENT_SUFFIX)]
    if len(marked) > 1:
        names = ", ".join(a.name for a in marked)
        raise AgentSelectionError(f"several agents are marked for chats ({names}); rename all but one")
    return marked[0] if marked else roots[0]


_Seen = TypeVar("_Seen")
# What `_Changes` last passed on before it passed on anything: equal to no key.
_NOTHING_YET = object()


class _Changes(Generic[_Seen]):
    """Passes on to ``hear`` only what differs, by ``key``, from the last thing it passed on: a poll that
    reads the same state again is no news."""

    __slots__ = ("_hear", "_key", "_last")

    def __init__(self, hear: Callable[[_Seen], None] | None, key: Callable[[_Seen], Hashable]) -> None:
        self._hear = hear
        self._key = key
        self._last: Hashable = _NOTHING_YET

    def __call__(self, seen: _Seen) -> None:
        if self._hear is None:
            return
        key = self._key(seen)
        if key == self._last:
            return
        self._last = key
        self._hear(seen)


async def wait_for_build(
    client: CoderClient,
    build: WorkspaceBuild,
    clock: Clock,
    settings: ReadinessSettings,
    *,
    on_progress: Callable[[WorkspaceBuild], None] | None = None,
) -> WorkspaceBuild:
    """Poll until the build's job succeeded, and return the finished build.

    Reads ``job.status``: failed raises `BuildFailedError` with the job's error text and code;
    canceled raises `BuildCanceledError`; pending, running and canceling keep waiting, and so does
    unknown (Coder could not tell this time; a later read may);
    ``build_timeout`` raises `BuildTimeoutError`. Every error carries the build id.

    ``on_progress`` hears the build as its status is first seen and each time it changes, the last one
    included (succeeded, failed or canceled), before the wait returns or raises; ``unknown`` is never told
    (the last known status still stands). It must not block.
    """
    told = _Changes(on_progress, lambda seen: seen.job.status)
    deadline = clock.now() + settings.build_timeout
    while True:
        job = build.job
        if job.status is not JobStatus.UNKNOWN:
            told(build)
        if job.status is JobStatus.SUCCEEDED:
            return build
        if job.status is JobStatus.FAILED:
            raise BuildFailedError("build failed", build_id=build.id, job_error=job.error, error_code=job.error_code)
        if job.status is JobStatus.CANCELED:
            raise BuildCanceledError("build was canceled", build_id=build.id, job_error=job.error)
        remaining = deadline - clock.now()
        if remaining <= 0:
            raise BuildTimeoutError(f"build did not finish within {settings.build_timeout:g} s", build_id=build.id)
        await clock.sleep(min(settings.build_poll_interval, remaining), *tags.CODER_BUILD_POLL)
        build = await client.build(build.id)


def _agent_in(build: WorkspaceBuild, agent_id: str) -> WorkspaceAgent | None:
    return next((agent for agent in build.agents if agent.id == agent_id), None)


async def wait_for_agent_ready(
    client: CoderClient, build_id: str, agent_id: str, clock: Clock, settings: ReadinessSettings
) -> dict[str, str | None]:
    """`wait_for_agent_readiness` as the reference's result keys (`AgentReadiness.result_keys`): an empty
    dict when the agent is ready."""
    return (await wait_for_agent_readiness(client, build_id, agent_id, clock, settings)).result_keys()


async def wait_for_agent_readiness(
    client: CoderClient,
    build_id: str,
    agent_id: str,
    clock: Clock,
    settings: ReadinessSettings,
    *,
    on_connected: Callable[[WorkspaceAgent], None] | None = None,
    on_progress: Callable[[WorkspaceAgent], None] | None = None,
) -> AgentReadiness:
    """Wait for the agent to connect, then for its startup scripts; `AGENT_READY` when it is ready.

    ``on_connected`` hears the agent as first seen connected, between the two phases. ``on_progress``
    hears it as its ``status`` and ``lifecycle_state`` are first seen and each time either changes, the
    reading that ends the wait included (so the connected reading comes just before ``on_connected``);
    a read that fails or misses the agent tells nothing. Neither may block.

    The two budgets are independent. Phase 1 (online): on exhaustion `AgentState.NOT_CONNECTED` with the
    last reason as ``error``. Phase 2 (lifecycle): ``created``/``starting`` keep waiting, ``ready`` is
    success, any other state gives `AgentState.STARTUP_SCRIPTS_FAILED` with that ``lifecycle_state``,
    exhaustion `AgentState.STARTUP_SCRIPTS_TIMEOUT`. A revoked token or a build that is gone raises at
    once; other read failures are retried within the budget. Cancellation propagates.
    """
    online_deadline = clock.now() + settings.agent_online_timeout
    last_error = "agent has not connected yet"
    agent: WorkspaceAgent | None = None
    told = _Changes(on_progress, lambda seen: (seen.status, seen.lifecycle_state))
    while True:
        try:
            build = await run_with_timeout(
                clock, settings.agent_probe_timeout, lambda: client.build(build_id), *tags.CODER_AGENT_POLL
            )
            agent = _agent_in(build, agent_id)
            if agent is None:
                last_error = "agent is no longer part of the build"
            else:
                told(agent)
                if agent.status is AgentStatus.CONNECTED:
                    break
                last_error = f"agent status is {agent.status.value}"
        except _FINAL:
            raise
        except (CoderError, TimeoutError) as exc:
            last_error = str(exc) or type(exc).__name__
        remaining = online_deadline - clock.now()
        if remaining <= 0:
            return AgentReadiness(AgentState.NOT_CONNECTED, error=last_error)
        await clock.sleep(min(settings.agent_probe_interval, remaining), *tags.CODER_AGENT_POLL)

    assert agent is not None  # the loop above only breaks on a connected agent
    if on_connected is not None:
        on_connected(agent)
    scripts_deadline = clock.now() + settings.startup_scripts_timeout
    while True:
        state = agent.lifecycle_state
        if state is LifecycleState.READY:
            return AGENT_READY
        if state not in (LifecycleState.CREATED, LifecycleState.STARTING):
            return AgentReadiness(AgentState.STARTUP_SCRIPTS_FAILED, lifecycle_state=state)
        remaining = scripts_deadline - clock.now()
        if remaining <= 0:
            return AgentReadiness(AgentState.STARTUP_SCRIPTS_TIMEOUT)
        await clock.sleep(min(settings.lifecycle_poll_interval, remaining), *tags.CODER_LIFECYCLE_POLL)
        try:
            build = await client.build(build_id)
        except _FINAL:
            raise
        except CoderError:
            continue  # a passing read failure: the lifecycle budget still bounds the wait
        agent = _agent_in(build, agent_id) or agent
        told(agent)
