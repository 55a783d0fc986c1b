from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType

import anyio

from chat_mcp_primer._errors import ChatMcpPrimerError
from chat_mcp_primer._tasks import TaskGroup, run_in_own_task
from chat_mcp_primer.chatloop import DEFAULT_MAX_STEPS, OnText, StopReason, ToolResultLimits, run_loop
from chat_mcp_primer.clock import Clock, SystemClock
from chat_mcp_primer.events import Event, EventHandler, EventName, Events
from chat_mcp_primer.model import Chat, Message, Model, Tool
from chat_mcp_primer.runtime._stream import TurnEvent, TurnEvents, TurnFinished
from chat_mcp_primer.runtime._workspaces import NoWorkspaces, Workspaces
from chat_mcp_primer.workspace_mcp import ListingLimits, MemoryToolCache, PrimerSettings, SessionSettings, ToolCache
from chat_mcp_primer.workspace_mcp._hub import WorkspaceMcpHub


class RuntimeClosedError(ChatMcpPrimerError, RuntimeError):
    """The runtime is closed, or was closed while the turn ran."""


@dataclass(frozen=True, slots=True)
class TurnResult:
    chat: Chat  # the chat after the turn: its messages and its current workspace binding
    added: tuple[Message, ...]  # the messages this turn added, starting with the user's
    steps: int
    stop_reason: StopReason
    text: str  # the model's last answer (the loop's `final_text`)


class _RunningTurns:
    """The turns running now, each in a cancel scope, so that `aclose` can cancel them and wait for them."""

    __slots__ = ("_idle", "_scopes")

    def __init__(self) -> None:
        self._scopes: set[anyio.CancelScope] = set()
        self._idle: anyio.Event | None = None

    def __len__(self) -> int:
        return len(self._scopes)

    @contextlib.contextmanager
    def running(self) -> Iterator[anyio.CancelScope]:
        """A scope for one turn, which counts as running until the block is left."""
        scope = anyio.CancelScope()
        self._scopes.add(scope)
        try:
            yield scope
        finally:
            self._scopes.discard(scope)
            if not self._scopes and self._idle is not None:
                self._idle.set()

    async def cancel_and_wait(self) -> None:
        for scope in list(self._scopes):
            scope.cancel()
        if self._scopes:
            self._idle = self._idle or anyio.Event()
            await self._idle.wait()


class ChatRuntime:
    """Runs chat turns whose tools can provision workspaces and use the MCP tools inside them.

    Use as an async context manager (or call `aclose` when done): inside it, MCP sessions, listings and
    the agents' wake-up feeds are shared by every chat and turn, and outlive turns. A runtime never
    entered works the same way, except that nothing can host them between turns: each `run_turn` then
    hosts its own, and closes them when it returns. Every turn owns its background work (the primer) and
    ends it before `run_turn` returns; `aclose` cancels turns still running, waits until they have, and
    closes every MCP session.

    ``workspaces`` is where chats get workspaces (`CoderWorkspaces`, or `WorkspacesFrom` any source);
    without it, chats get no workspace MCP tools. ``tools`` are the built-in tools offered in every turn;
    their names are never given to a workspace tool. ``primer``, ``sessions`` and ``listing`` tune
    discovery; ``result_limits`` bounds every tool result before it enters the chat. ``instructions`` is
    the system prompt every model request carries. ``cache`` keeps tool listings between turns: a
    `MemoryToolCache` of the runtime's own by default, or a `SharedToolCache` such as
    ``chat_mcp_primer.redis.RedisToolCache`` that several replicas share.
    """

    def __init__(
        self,
        model: Model,
        *,
        instructions: str = "",
        workspaces: Workspaces | None = None,
        tools: Sequence[Tool] = (),
        clock: Clock | None = None,
        primer: PrimerSettings | None = None,
        sessions: SessionSettings | None = None,
        listing: ListingLimits | None = None,
        cache: ToolCache | None = None,
        max_steps: int = DEFAULT_MAX_STEPS,
        result_limits: ToolResultLimits | None = None,
        on_event: EventHandler | None = None,
    ) -> None:
        self.model = model
        self.instructions = instructions
        self.workspaces = workspaces
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.cache: ToolCache = cache if cache is not None else MemoryToolCache()
        self.max_steps = max_steps
        self.result_limits = result_limits if result_limits is not None else ToolResultLimits()
        self._on_event = on_event
        # The streamed turns running, by chat: each hears the events about its chat.
        self._taps: dict[str, list[TurnEvents]] = {}
        self.events = Events(self.clock.now, self._dispatch if on_event is None else self._dispatch_too)
        self._hub = functools.partial(
            WorkspaceMcpHub,
            cache=self.cache,
            clock=self.clock,
            events=self.events,
            primer=primer,
            sessions=sessions,
            listing=listing,
        )
        self._tools = tuple(tools)
        self._turns = _RunningTurns()
        self._closed = False
        self._shared: WorkspaceMcpHub | None = None

    async def __aenter__(self) -> ChatRuntime:
        """Share MCP sessions, listings and feeds across the turns of every chat until `aclose`."""
        if self._closed:
            raise RuntimeClosedError("a closed ChatRuntime cannot be entered again")
        if self._shared is None:
            hub = self._hub()
            await hub.__aenter__()
            self._shared = hub
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _dispatch(self, event: Event) -> None:
        if self._taps:
            for tap in self._taps.get(str(event.fields.get("chat_id")), ()):
                tap(event)

    def _dispatch_too(self, event: Event) -> None:
        assert self._on_event is not None
        try:
            self._on_event(event)
        finally:
            self._dispatch(event)

    @property
    def active_turns(self) -> int:
        return len(self._turns)

    async def aclose(self) -> None:
        """Refuse new turns, cancel the running ones, and return once all of them have ended and every
        MCP session is closed."""
        self._closed = True
        await self._turns.cancel_and_wait()
        hub, self._shared = self._shared, None
        if hub is not None:
            await hub.__aexit__(None, None, None)

    async def run_turn(self, chat: Chat, text: str) -> TurnResult:
        """Run one turn: the user's ``text``, then model steps until it answers without tool calls.

        Returns the updated chat. Raises `RuntimeClosedError` if the runtime is closed, or closed while
        the turn runs. Cancelling the caller cancels the turn and its background work.
        """
        if self._closed:
            raise RuntimeClosedError("the ChatRuntime is closed")
        # A turn cancels scopes of its own as it goes (a held step released, a timed call done); in a task of
        # its own, none of that can ever undo a cancellation of the caller's task (see `TaskGroup`).
        return await run_in_own_task(functools.partial(self._run_registered, chat, text))

    @contextlib.asynccontextmanager
    async def stream_turn(self, chat: Chat, text: str) -> AsyncIterator[AsyncIterator[TurnEvent]]:
        """Run one turn as `run_turn` does, telling what happens as it happens::

            async with runtime.stream_turn(chat, "set up a workspace") as events:
                async for event in events:
                    ...  # TextDelta, ToolCallStarted/Finished, WorkspaceProgress, StepHeld/StepResumed,
                         # WorkspaceToolsAdded, and last TurnFinished with the TurnResult

        The model's text streams when the model can (`StreamingModel`). A held step is always told
        (`StepHeld`, then `StepResumed`), so a caller can show why the answer pauses. Leaving the block
        before the end cancels the turn and waits for it to end; an error of the turn is raised when the
        block is left.
        """
        if self._closed:
            raise RuntimeClosedError("the ChatRuntime is closed")
        send, receive = anyio.create_memory_object_stream[TurnEvent](math.inf)
        tap = TurnEvents(send.send_nowait)
        stop = anyio.CancelScope()

        async def run() -> None:
            with send, stop:
                self._taps.setdefault(chat.id, []).append(tap)
                try:
                    result = await run_in_own_task(functools.partial(self._run_registered, chat, text, tap.text))
                finally:
                    taps = self._taps[chat.id]
                    taps.remove(tap)
                    if not taps:
                        del self._taps[chat.id]
                send.send_nowait(TurnFinished(result))

        async with TaskGroup() as group:
            group.start_soon(run)
            try:
                with receive:
                    yield receive
            finally:
                stop.cancel()  # a caller that leaves early ends the turn; one that read to the end changes nothing

    @contextlib.asynccontextmanager
    async def _hub_for_turn(self) -> AsyncIterator[WorkspaceMcpHub]:
        """The runtime's shared hub when it is entered; else one that this turn hosts."""
        if self._shared is not None:
            yield self._shared
            return
        async with self._hub() as hub:
            yield hub

    async def _run_registered(self, chat: Chat, text: str, on_text: OnText | None = None) -> TurnResult:
        user_message = Message.user(text)
        self.events.emit(EventName.TURN_STARTED, chat_id=chat.id)
        with self._turns.running() as scope:
            with scope:
                async with self._hub_for_turn() as hub:
                    await hub.pacer.admit()  # many turns started at once begin a few per loop pass
                    result = await self._run(hub, chat, user_message, on_text)
            if scope.cancelled_caught:
                raise RuntimeClosedError("the ChatRuntime was closed during the turn")
        self.events.emit(EventName.TURN_ENDED, chat_id=chat.id, steps=result.steps, stop_reason=result.stop_reason)
        return result

    async def _run(self, hub: WorkspaceMcpHub, chat: Chat, user_message: Message, on_text: OnText | None) -> TurnResult:
        builtin = list(self._tools)
        workspaces = self.workspaces
        turn = hub.turn(
            chat_id=chat.id,
            binding=chat.workspace,
            source=workspaces.source if workspaces is not None else NoWorkspaces(),
            reserved_names=[tool.spec.name for tool in builtin],
        )
        async with turn:
            if workspaces is not None and chat.is_root:
                provisioning = list(workspaces.provisioning_tools(turn))
                builtin.extend(provisioning)
                turn.reserve_names(tool.spec.name for tool in provisioning)
            loop = await run_loop(
                self.model,
                (*chat.messages, user_message),
                builtin,
                prepare_tools=turn.prepare_tools if workspaces is not None else None,
                step_notes=turn.model_notes if workspaces is not None else None,
                instructions=self.instructions,
                on_text=on_text,
                max_steps=self.max_steps,
                result_limits=self.result_limits,
                events=self.events.bind(chat_id=chat.id),
            )
            binding = turn.binding
        added = (user_message, *loop.messages)
        updated = chat.with_messages((*chat.messages, *added)).with_workspace(binding)
        return TurnResult(
            chat=updated, added=added, steps=loop.steps, stop_reason=loop.stop_reason, text=loop.final_text
        )
