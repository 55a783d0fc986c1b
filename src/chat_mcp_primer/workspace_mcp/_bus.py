"""One wake-up bus per agent: every signal that a discovery attempt may now find more tools.

Whatever the signal (the workspace changed, a refused endpoint accepts connections, a server said its
tools changed, another chat listed them, the held-step poll found them all), its source publishes a
`Wake` on the bus of the agent it is about, and every primer and held step of that agent's chats hears
it through the one subscription its turn holds. Sources that must run to find anything out (a workspace's
change stream, a connection probe, the poll) are *feeds*: started on the bus while someone demands them,
shared by every demander, stopped with the last.

Adding a kind of signal is a `WakeKind` and a feed (or a `publish` where the fact is learnt); the
listeners decide by kind what a wake means to them.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Hashable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import anyio

from chat_mcp_primer._tasks import BackgroundTasks

AgentKey = tuple[str, str]
"""An agent as (workspace id, agent id)."""

Unsubscribe = Callable[[], None]


class WakeKind(StrEnum):
    """What a wake-up says."""

    WORKSPACE_CHANGED = "workspace_changed"  # the backend's change stream: agent state, an app turned healthy
    ENDPOINT_ACCEPTS = "endpoint_accepts"  # an endpoint that refused connections accepts them now
    TOOLS_CHANGED = "tools_changed"  # a server said its tools changed (tools/list_changed): its cache is gone
    SERVER_LISTED = "server_listed"  # a server's tools were listed and cached, by any chat
    TOOLS_LISTED = "tools_listed"  # the held-step poll found every server's tools (or that none has any)
    REPORT_CHANGED = "report_changed"  # a pending discovery report changed: a server was tried, or all were


@dataclass(frozen=True, slots=True)
class Wake:
    kind: WakeKind
    detail: str  # what it is about, in a few words: the server's name, the source's reason


WakeListener = Callable[[Wake], None]
"""Called inline for every wake of the agent: quick, and never awaiting."""

Publish = Callable[[Wake], None]
Feed = Callable[[Publish], Coroutine[Any, Any, None]]
"""A source that runs to find something out and publishes what it finds; it may end on its own."""


@dataclass(slots=True)
class _Running:
    demands: int = 0
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)


class AgentBus:
    """The wake-ups of one agent, and the feeds that run for it. Made and dropped by `AgentBuses`."""

    __slots__ = ("_buses", "_feeds", "_listeners", "key")

    def __init__(self, key: AgentKey, buses: AgentBuses) -> None:
        self.key = key
        self._buses = buses
        self._listeners: list[WakeListener] = []
        self._feeds: dict[Hashable, _Running] = {}

    @property
    def idle(self) -> bool:
        return not self._listeners and not self._feeds

    def subscribe(self, listener: WakeListener) -> Unsubscribe:
        """Hear every wake of this agent until the returned function is called."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)
                self._buses.drop_if_idle(self)

        return unsubscribe

    def publish(self, wake: Wake) -> None:
        for listener in list(self._listeners):
            listener(wake)

    def demand(self, name: Hashable, feed: Feed) -> Unsubscribe:
        """Run ``feed`` (once, however many demand it by ``name``) until the last demand is withdrawn."""
        running = self._feeds.get(name)
        if running is None:
            running = self._feeds[name] = _Running()
            self._buses.tasks.start_soon(self._run, name, running, feed)
        running.demands += 1
        withdrawn = False

        def withdraw() -> None:
            nonlocal withdrawn
            if withdrawn:
                return
            withdrawn = True
            running.demands -= 1
            if running.demands == 0:
                running.scope.cancel()
                self._forget(name, running)

        return withdraw

    async def _run(self, name: Hashable, running: _Running, feed: Feed) -> None:
        with running.scope:
            await feed(self.publish)
        self._forget(name, running)  # ended on its own (it found what it looked for): the next demand restarts it

    def _forget(self, name: Hashable, running: _Running) -> None:
        if self._feeds.get(name) is running:
            del self._feeds[name]
            self._buses.drop_if_idle(self)


class AgentBuses:
    """The bus of every agent someone listens to or runs a feed for; feeds run among ``tasks``."""

    __slots__ = ("_buses", "tasks")

    def __init__(self, tasks: BackgroundTasks) -> None:
        self.tasks = tasks
        self._buses: dict[AgentKey, AgentBus] = {}

    def __len__(self) -> int:
        return len(self._buses)

    def bus(self, key: AgentKey) -> AgentBus:
        bus = self._buses.get(key)
        if bus is None:
            bus = self._buses[key] = AgentBus(key, self)
        return bus

    def publish(self, key: AgentKey, wake: Wake) -> None:
        """Tell everyone listening to ``key``'s agent; nobody listening costs nothing."""
        bus = self._buses.get(key)
        if bus is not None:
            bus.publish(wake)

    def drop_if_idle(self, bus: AgentBus) -> None:
        if bus.idle and self._buses.get(bus.key) is bus:
            del self._buses[bus.key]
