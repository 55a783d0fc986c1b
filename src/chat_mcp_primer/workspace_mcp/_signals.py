"""What tells a primer that a retry may now succeed, so it need not wait out its pause."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import anyio
import anyio.lowlevel

from chat_mcp_primer._tasks import BackgroundTasks
from chat_mcp_primer.clock import Clock, run_with_timeout
from chat_mcp_primer.events import Events
from chat_mcp_primer.model import WorkspaceBinding
from chat_mcp_primer.workspace import WorkspaceChangeSource
from chat_mcp_primer.workspace_mcp._discovery import DiscoveryResult, Outcome
from chat_mcp_primer.workspace_mcp._failures import describe_failure
from chat_mcp_primer.workspace_mcp._poll_schedule import PollSchedule
from chat_mcp_primer.workspace_mcp._settings import PrimerSettings

PREPARE_WAIT_TAGS = ("prepare", "wait")
PREPARE_POLL_TAGS = ("prepare", "poll")
PROBE_TAGS = ("primer", "probe")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_K = TypeVar("_K", bound=Hashable)
Unsubscribe = Callable[[], None]


class Signal:
    """A level-triggered wake-up for one sleeper: `set` during a `sleep` ends it early, `set` before one
    makes it return at once. Each early return consumes the signal.

    The sleeper's cancel scope is cancelled directly, so an interruptible sleep costs no extra task: it
    matters when a thousand primers pause at once.
    """

    __slots__ = ("_pending", "_sleeper")

    def __init__(self) -> None:
        self._pending = False
        self._sleeper: anyio.CancelScope | None = None

    def set(self) -> None:
        sleeper, self._sleeper = self._sleeper, None
        if sleeper is None:
            self._pending = True
        else:
            sleeper.cancel()

    def clear(self) -> None:
        self._pending = False

    async def sleep(self, clock: Clock, seconds: float, *tags: str) -> bool:
        """Sleep ``seconds`` on ``clock`` (tagged ``tags``), less if the signal is set; True when woken early."""
        if self._pending:
            self._pending = False
            await anyio.lowlevel.checkpoint()
            return True
        with anyio.CancelScope() as scope:
            self._sleeper = scope
            try:
                await clock.sleep(seconds, *tags)
            finally:
                if self._sleeper is scope:
                    self._sleeper = None
        return scope.cancelled_caught


async def accepts_connections(url: str, clock: Clock, within: float) -> bool:
    """Whether the host and port of ``url`` accept a TCP connection now (closed again at once)."""
    parts = urlsplit(url)
    host = parts.hostname
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    if host is None or port is None:
        return False

    async def knock() -> None:
        stream = await anyio.connect_tcp(host, port)
        await stream.aclose()

    try:
        await run_with_timeout(clock, within, knock, *PROBE_TAGS)
    except (OSError, TimeoutError):
        return False
    return True


SignalListener = Callable[[str], None]
"""Told a short reason ("workspace changed", "accepts") each time a shared signal fires."""


@dataclass(slots=True)
class _Feed:
    """One shared watch or probe: the turns listening to it, and the scope that ends it."""

    listeners: list[SignalListener] = field(default_factory=list)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)

    def tell(self, reason: str) -> None:
        for listener in list(self.listeners):
            listener(reason)


LookForTools = Callable[[], Awaitable[DiscoveryResult]]
"""One discovery attempt for an agent's tools; its outcome is OK when every one of its servers listed some."""


class SharedSignals:
    """The wake-up sources every turn of a hub shares: one change stream per workspace (with Coder, one
    watch connection to coderd, however many chats wait on the workspace), one connection probe per
    refused endpoint, and one poll per agent for the steps held for its primers. Each runs while anyone
    listens, in a task among ``tasks`` (the owner's background tasks, which end them all), and ends with
    its last listener.
    """

    def __init__(self, clock: Clock, settings: PrimerSettings, events: Events, tasks: BackgroundTasks) -> None:
        self._clock = clock
        self._settings = settings
        self._events = events
        self._tasks = tasks
        self._watches: dict[tuple[int, str], _Feed] = {}
        self._probes: dict[str, _Feed] = {}
        self._polls: dict[tuple[str, str], _Feed] = {}

    def watch(self, source: WorkspaceChangeSource, binding: WorkspaceBinding, listener: SignalListener) -> Unsubscribe:
        """Tell ``listener`` of every change ``source`` reports for the workspace, until unsubscribed."""
        key = (id(source), binding.workspace_id)
        feed = self._watches.get(key)
        if feed is None:
            feed = self._watches[key] = _Feed()
            self._start(self._watch, key, feed, source, binding)
        return self._subscribe(self._watches, key, feed, listener)

    def probe(self, url: str, listener: SignalListener) -> Unsubscribe:
        """Tell ``listener`` once the host and port of ``url`` accept connections, until unsubscribed."""
        feed = self._probes.get(url)
        if feed is None:
            feed = self._probes[url] = _Feed()
            self._start(self._knock, url, feed)
        return self._subscribe(self._probes, url, feed, listener)

    def poll(self, agent: tuple[str, str], look: LookForTools, listener: SignalListener) -> Unsubscribe:
        """``look`` for the tools of ``agent`` (workspace id, agent id) on the `PollSchedule`: every
        ``prepare_poll_interval`` at first, less often for servers that keep answering without tools, by a
        bare TCP knock for servers that refuse connections; tell ``listener`` once they are all listed,
        until unsubscribed.

        A held step stands in for the model steps it holds back, each of which would have listed once.
        A thousand chats held on a hundred agents make a hundred looks per interval, not a thousand
        wake-ups: a chat's poll costs nothing until the tools are there. The first listener's ``look``
        is the one used; every chat of an agent looks the same way, and the schedule is the agent's,
        however late a chat joins it.
        """
        feed = self._polls.get(agent)
        if feed is None:
            feed = self._polls[agent] = _Feed()
            self._start(self._poll, agent, feed, look)
        return self._subscribe(self._polls, agent, feed, listener)

    def _start(self, function: Callable[..., Coroutine[Any, Any, None]], *args: Any) -> None:
        self._tasks.start_soon(function, *args)

    @staticmethod
    def _subscribe(feeds: dict[_K, _Feed], key: _K, feed: _Feed, listener: SignalListener) -> Unsubscribe:
        feed.listeners.append(listener)

        def unsubscribe() -> None:
            if listener in feed.listeners:
                feed.listeners.remove(listener)
            if not feed.listeners:
                feed.scope.cancel()
                if feeds.get(key) is feed:
                    del feeds[key]

        return unsubscribe

    async def _watch(
        self, key: tuple[int, str], feed: _Feed, source: WorkspaceChangeSource, binding: WorkspaceBinding
    ) -> None:
        with feed.scope:
            try:
                async for reason in source.changes(binding):
                    feed.tell(reason)
            except Exception as exc:  # a watch that breaks only loses the early wake-up, never a primer
                self._events.emit(
                    "primer.watch_failed", workspace_id=binding.workspace_id, reason=describe_failure(exc)
                )
        if self._watches.get(key) is feed:  # ended on its own: the next listener starts a new one
            del self._watches[key]

    async def _poll(self, agent: tuple[str, str], feed: _Feed, look: LookForTools) -> None:
        settings = self._settings
        schedule = PollSchedule(
            interval=settings.prepare_poll_interval,
            patience=settings.prepare_poll_patience,
            longest=settings.prepare_poll_max_interval,
        )
        next_look = schedule.first
        with feed.scope:
            while True:
                await self._clock.sleep(next_look.pause, *PREPARE_POLL_TAGS)
                if next_look.knock_first and not await self._any_accepts(next_look.knock_first):
                    continue  # still refused: no dial, no listing
                result = await look()
                if result.outcome is Outcome.OK:
                    feed.tell("tools listed")
                    break
                was_backing_off = schedule.backing_off
                next_look = schedule.after(result, self._clock.now())
                if schedule.backing_off and not was_backing_off:
                    workspace_id, agent_id = agent
                    self._events.emit(
                        "prepare.poll_backing_off",
                        workspace_id=workspace_id,
                        agent_id=agent_id,
                        outcome=result.outcome.value,
                    )
        if self._polls.get(agent) is feed:
            del self._polls[agent]

    async def _any_accepts(self, urls: tuple[str, ...]) -> bool:
        for url in urls:
            if await accepts_connections(url, self._clock, self._settings.probe_interval):
                return True
        return False

    async def _knock(self, url: str, feed: _Feed) -> None:
        with feed.scope:
            while True:
                await self._clock.sleep(self._settings.probe_interval, *PROBE_TAGS)
                if await accepts_connections(url, self._clock, self._settings.probe_interval):
                    feed.tell("accepts")
                    break
        if self._probes.get(url) is feed:
            del self._probes[url]
