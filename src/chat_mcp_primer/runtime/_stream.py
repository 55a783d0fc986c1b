"""What a streamed turn tells its caller as it happens (`ChatRuntime.stream_turn`): typed, in order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chat_mcp_primer.events import Event, EventName

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


@dataclass(frozen=True, slots=True)
class WorkspaceProgress:
    """A lifecycle tool moved the chat's workspace on: bound to a build, its agent known, its agent ready."""

    message: str


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
        return WorkspaceProgress(f"workspace {fields.get('workspace_id')}: agent {fields['agent_id']} found")
    if fields.get("build_id"):
        return WorkspaceProgress(f"workspace {fields.get('workspace_id')}: build {fields['build_id']} started")
    return None


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
