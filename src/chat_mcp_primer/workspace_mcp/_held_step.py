"""A turn's next step held for its primer, so the tools the primer finds reach that very step."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import anyio

from chat_mcp_primer.events import EventName, Events
from chat_mcp_primer.workspace import AgentMcp
from chat_mcp_primer.workspace_mcp._bus import Feed, Unsubscribe
from chat_mcp_primer.workspace_mcp._discovery import DiscoveryResult
from chat_mcp_primer.workspace_mcp._held_poll import tools_poll

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from chat_mcp_primer.workspace_mcp._hub import WorkspaceMcpHub


# Why a held step goes on when its primer ended (`StepHolds.release` is told so by the turn).
PRIMER_ENDED = "primer ended"


class HeldStep:
    """One held step. It ends one way, `release`, called by whichever comes first: its primer's end, the
    ``prepare_wait`` bound (the hub's one deadline task), or the agent's bus saying every server listed."""

    __slots__ = ("primer_ended", "reason", "scope")

    def __init__(self, primer_ended: anyio.Event) -> None:
        self.primer_ended = primer_ended
        self.scope = anyio.CancelScope()
        self.reason: str | None = None

    def release(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
            self.scope.cancel()


class StepHolds:
    """Holds a turn's step until its fresh primer ends, at most ``prepare_wait``, once per primer.

    While the step is held, the model makes no steps, so someone must look for the tools as each model
    step would have: a server that lists its tools without any signal is found within a poll, not a
    primer pause. The look is a feed of the agent's bus (`tools_poll`), one per agent however many chats
    are held on it: a cheap listing, shared with the primers by single flight, answered from the cache
    once anyone has the tools.
    """

    __slots__ = ("_events", "_held", "_hub", "_waited_for")

    def __init__(self, hub: WorkspaceMcpHub, events: Events) -> None:
        self._hub = hub
        self._events = events
        self._held: HeldStep | None = None
        self._waited_for: anyio.Event | None = None

    async def hold(
        self,
        primer_ended: anyio.Event,
        resolve: Callable[[], Awaitable[AgentMcp | None]],
    ) -> bool:
        """Hold the step for the primer that sets ``primer_ended``, unless it has ended or held a step already.

        True when this call held the step and the primer's end released it: the primer's last attempt is
        then as fresh as any the step could make."""
        if primer_ended.is_set() or primer_ended is self._waited_for:
            return False
        self._waited_for = primer_ended
        self._events.emit(EventName.PREPARE_WAITING_FOR_PRIMER)
        hub = self._hub
        step = self._held = HeldStep(primer_ended)
        bound = hub.hold_deadlines.call_at(
            hub.clock.now() + hub.strategy.settings.prepare_wait, functools.partial(step.release, "bound")
        )
        stop_polling: Unsubscribe | None = None
        try:
            with step.scope:
                agent = await resolve()
                if agent is not None:  # else the primer's end or the bound ends the hold
                    bus = hub.buses.bus((agent.workspace_id, agent.agent_id))
                    stop_polling = bus.demand("poll", self._poll(agent))
                await anyio.sleep_forever()
        finally:
            self._held = None
            bound.clear()
            if stop_polling is not None:
                stop_polling()
        self._events.emit(EventName.PREPARE_HOLD_ENDED, reason=step.reason)
        return step.reason == PRIMER_ENDED

    def release(self, reason: str, primer_ended: anyio.Event | None = None) -> None:
        """End the held step (only if it is held for the primer that set ``primer_ended``, when given)."""
        held = self._held
        if held is not None and primer_ended in (None, held.primer_ended):
            held.release(reason)

    def _poll(self, agent: AgentMcp) -> Feed:
        hub = self._hub

        async def look() -> DiscoveryResult:
            await hub.pacer.admit()
            return await hub.discovery.attempt(agent)

        key = (agent.workspace_id, agent.agent_id)
        return tools_poll(key, look, hub.clock, hub.strategy.settings, hub.events)
