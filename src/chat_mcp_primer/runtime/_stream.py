"""What a streamed turn tells its caller as it happens (`ChatRuntime.stream_turn`): typed, in order."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from chat_mcp_primer.events import Event, EventName
from chat_mcp_primer.workspace.coder import AgentStatus, JobStatus, LifecycleState, Transition

if TYPE_CHECKING:
    from chat_mcp_primer.runtime._runtime import TurnResult


@dataclass(frozen=True, slots=True)
class TurnTextDelta:
    """A piece of the model's answer at ``step``, as it streams."""

    text: str
    step: int


@dataclass(frozen=True, slots=True)
class ToolCallStarted:
    tool: str


@dataclass(frozen=True, slots=True)
class ToolCallFinished:
    tool: str
    is_error: bool


class WorkspacePhase(StrEnum):
    """Where a lifecycle tool has brought the chat's workspace, as `WorkspaceProgress.phase`: a value a
    client can switch on (a step list, a spinner's label) where the message is for people."""

    # The chat is bound to a build the tool posted or joined.
    BOUND_TO_BUILD = "bound_to_build"
    # The build's job waits for a provisioner.
    BUILD_QUEUED = "build_queued"
    BUILD_RUNNING = "build_running"
    BUILD_CANCELING = "build_canceling"
    # The build finished and the chat is bound to the agent it waits for.
    AGENT_FOUND = "agent_found"
    AGENT_CONNECTING = "agent_connecting"
    # Coder gave up on the agent's first connection, or lost it; the tool still waits within its budget.
    AGENT_TIMED_OUT = "agent_timed_out"
    AGENT_DISCONNECTED = "agent_disconnected"
    # Connected, its startup scripts not begun yet.
    AGENT_CONNECTED = "agent_connected"
    STARTUP_SCRIPTS = "startup_scripts"
    AGENT_READY = "agent_ready"


@dataclass(frozen=True, slots=True)
class WorkspaceProgress:
    """A lifecycle tool moved the chat's workspace on (bound to a build, the build queued and running, its
    agent found, connecting, running its startup scripts, ready): each change told once, as it happens.

    A build or startup scripts that fail are not told here: the tool's result says so, with why.
    """

    message: str
    phase: WorkspacePhase


@dataclass(frozen=True, slots=True)
class StepHeld:
    """The next model step waits for the workspace's tools (at most ``prepare_wait``), and why."""

    reason: str


@dataclass(frozen=True, slots=True)
class StepResumed:
    """The held step goes on: the primer ended, every server listed, or the bound was reached."""

    reason: str


@dataclass(frozen=True, slots=True)
class WorkspaceToolsAdded:
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TurnFinished:
    """The turn's end, with its result; always the last event of a turn that ended by itself."""

    result: TurnResult


TurnEvent = (
    TurnTextDelta
    | ToolCallStarted
    | ToolCallFinished
    | WorkspaceProgress
    | StepHeld
    | StepResumed
    | WorkspaceToolsAdded
    | TurnFinished
)

HELD_FOR_TOOLS = "waiting for workspace tools"


def _workspace_progress(event: Event) -> TurnEvent | None:
    fields = event.fields
    if fields.get("agent_id"):
        message = f"workspace {fields.get('workspace_id')}: agent {fields['agent_id']} found"
        return WorkspaceProgress(message, WorkspacePhase.AGENT_FOUND)
    if fields.get("build_id"):
        message = f"workspace {fields.get('workspace_id')}: build {fields['build_id']} started"
        return WorkspaceProgress(message, WorkspacePhase.BOUND_TO_BUILD)
    return None


# A build's job status while it is waited for; how it ended is the tool's result.
_BUILD_PHASES: Mapping[str, tuple[WorkspacePhase, str]] = {
    JobStatus.PENDING: (WorkspacePhase.BUILD_QUEUED, "queued"),
    JobStatus.RUNNING: (WorkspacePhase.BUILD_RUNNING, "running"),
    JobStatus.CANCELING: (WorkspacePhase.BUILD_CANCELING, "canceling"),
}

# An agent that is not connected, by its status.
_UNCONNECTED_PHASES: Mapping[str, tuple[WorkspacePhase, str]] = {
    AgentStatus.CONNECTING: (WorkspacePhase.AGENT_CONNECTING, "agent connecting"),
    AgentStatus.TIMEOUT: (WorkspacePhase.AGENT_TIMED_OUT, "agent timed out connecting"),
    AgentStatus.DISCONNECTED: (WorkspacePhase.AGENT_DISCONNECTED, "agent disconnected"),
}

# A connected agent, by its lifecycle state; one whose startup scripts failed is the tool's result.
_CONNECTED_PHASES: Mapping[str, tuple[WorkspacePhase, str]] = {
    LifecycleState.CREATED: (WorkspacePhase.AGENT_CONNECTED, "agent connected"),
    LifecycleState.STARTING: (WorkspacePhase.STARTUP_SCRIPTS, "running startup scripts"),
    LifecycleState.READY: (WorkspacePhase.AGENT_READY, "agent ready"),
}


def _build_progress(event: Event) -> TurnEvent | None:
    fields = event.fields
    found = _BUILD_PHASES.get(fields.get("status", ""))
    if found is None:
        return None
    phase, status = found
    transition = fields.get("transition")
    # "build queued" is the start the user waits for; a stop or a delete says which it is.
    kind = "build" if transition in (None, Transition.START) else f"{transition} build"
    return WorkspaceProgress(f"{kind} {status}", phase)


def _agent_progress(event: Event) -> TurnEvent | None:
    fields = event.fields
    if fields.get("status") == AgentStatus.CONNECTED:
        found = _CONNECTED_PHASES.get(fields.get("lifecycle_state", ""))
    else:
        found = _UNCONNECTED_PHASES.get(fields.get("status", ""))
    if found is None:
        return None
    phase, message = found
    return WorkspaceProgress(message, phase)


def _held(event: Event) -> TurnEvent | None:
    return StepHeld(HELD_FOR_TOOLS)


def _resumed(event: Event) -> TurnEvent | None:
    return StepResumed(str(event.fields.get("reason") or ""))


def _started(event: Event) -> TurnEvent | None:
    return ToolCallStarted(str(event.fields.get("tool")))


def _finished(event: Event) -> TurnEvent | None:
    return ToolCallFinished(str(event.fields.get("tool")), bool(event.fields.get("is_error")))


def _added(event: Event) -> TurnEvent | None:
    return WorkspaceToolsAdded(tuple(event.fields.get("names") or ()))


def _pending(event: Event) -> TurnEvent | None:
    return StepHeld(f"{HELD_FOR_TOOLS}: {event.fields.get('server')} is still starting its servers")


# The library's events that a streamed turn passes on, and what each becomes.
_TRANSLATIONS: dict[str, Callable[[Event], TurnEvent | None]] = {
    EventName.CHAT_UPDATED: _workspace_progress,
    EventName.WORKSPACE_BUILD_PROGRESS: _build_progress,
    EventName.WORKSPACE_AGENT_PROGRESS: _agent_progress,
    EventName.PREPARE_WAITING_FOR_PRIMER: _held,
    EventName.PREPARE_HOLD_ENDED: _resumed,
    EventName.TOOL_STARTED: _started,
    EventName.TOOL_CALLED: _finished,
    EventName.TOOLS_ADDED: _added,
    EventName.DISCOVERY_REPORT_PENDING: _pending,
}


class TurnEvents:
    """Turns the library's events about one chat into the `TurnEvent` a streamed turn's caller sees, each
    handed to ``send`` as it happens. A held step is told once per reason until it goes on."""

    __slots__ = ("_held", "_send")

    def __init__(self, send: Callable[[TurnEvent], None]) -> None:
        self._send = send
        self._held: StepHeld | None = None

    def __call__(self, event: Event) -> None:
        if event.name == EventName.DISCOVERY_REPORT_PENDING and self._held is None:
            return  # news for a held step only
        translate = _TRANSLATIONS.get(event.name)
        told = translate(event) if translate is not None else None
        if told is None or told == self._held:
            return
        if isinstance(told, StepHeld):
            self._held = told
        elif isinstance(told, StepResumed):
            self._held = None
        self._send(told)

    def text(self, step: int, text: str) -> None:
        self._send(TurnTextDelta(text, step))
