"""Which agent one chat's turn works with, and its one subscription to that agent's wake-up bus."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from chat_mcp_primer.events import EventName, Events
from chat_mcp_primer.model import WorkspaceBinding
from chat_mcp_primer.workspace import AgentMcp, WorkspaceMcpSource
from chat_mcp_primer.workspace_mcp._bus import AgentBus, AgentKey, Unsubscribe, Wake, WakeListener
from chat_mcp_primer.workspace_mcp._cache import CacheKey
from chat_mcp_primer.workspace_mcp._failures import describe_failure

if TYPE_CHECKING:
    from chat_mcp_primer.workspace_mcp._hub import WorkspaceMcpHub


class ChatAgent:
    """The binding the chat's tools reported, the agent it resolves to, and the bus the turn hears.

    The agent is looked up once and kept until an attempt fails (it may have been replaced) or the chat
    is bound elsewhere. The turn hears the bus of the agent it works with (the resolved one, else the
    one the binding names) through ``on_wake``, and follows the agent when it changes.
    """

    __slots__ = ("_agent", "_binding", "_events", "_following", "_hub", "_on_wake", "source", "used")

    def __init__(
        self,
        binding: WorkspaceBinding | None,
        source: WorkspaceMcpSource,
        hub: WorkspaceMcpHub,
        events: Events,
        on_wake: WakeListener,
    ) -> None:
        self._binding = binding
        self.source = source
        self._hub = hub
        self._events = events
        self._on_wake = on_wake
        self._agent: AgentMcp | None = None
        self._following: tuple[AgentKey, Unsubscribe] | None = None
        # Every server of every agent this turn resolved, whose sessions it hands back at its end.
        self.used: set[CacheKey] = set()
        self._follow()

    @property
    def binding(self) -> WorkspaceBinding | None:
        return self._binding

    @property
    def current(self) -> AgentMcp | None:
        """The agent the latest lookup found, until an attempt fails or the chat is bound elsewhere."""
        return self._agent

    @property
    def bus(self) -> AgentBus | None:
        """The bus the turn hears, if it works with an agent yet."""
        return self._hub.buses.bus(self._following[0]) if self._following is not None else None

    def rebind(self, binding: WorkspaceBinding | None) -> None:
        self._binding = binding
        self._agent = None
        self._follow()

    def forget(self) -> None:
        """Look the agent up again next time: an attempt failed, and it may have been replaced."""
        self._agent = None

    async def resolve(self) -> AgentMcp | None:
        """The bound workspace's current agent, or None (unbound, no agent now, or the lookup failed)."""
        binding = self._binding
        if binding is None:
            return None
        agent = self._agent
        if (
            agent is not None
            and agent.workspace_id == binding.workspace_id
            and binding.agent_id in (None, agent.agent_id)
        ):
            return agent
        try:
            agent = await self.source.current_agent(binding)
        except Exception as exc:
            self._events.emit(EventName.DISCOVERY_RESOLVE_FAILED, reason=describe_failure(exc))
            return None
        if self._binding is not binding:
            return None  # rebound while we looked: this answer is for the old binding
        await self._hub.agent_seen(binding.workspace_id, agent.agent_id if agent is not None else None)
        self._agent = agent
        if agent is not None:
            self.used.update(CacheKey(agent.workspace_id, agent.agent_id, e.server) for e in agent.endpoints)
            if binding.agent_id != agent.agent_id:
                self._binding = replace(binding, agent_id=agent.agent_id)
        self._follow()
        return agent

    def close(self) -> None:
        """Stop hearing the bus, for good: the turn has ended (and its callback is let go, so nothing here
        keeps the finished turn alive)."""
        self._unfollow()
        self._on_wake = _ignore

    def _unfollow(self) -> None:
        if self._following is not None:
            self._following[1]()
            self._following = None

    def _follow(self) -> None:
        # A failed attempt forgets the resolved agent (it may have been replaced), but the binding still
        # names it: a primer whose attempts failed must still hear that its agent's tools were listed.
        agent, binding = self._agent, self._binding
        key: AgentKey | None = None
        if agent is not None:
            key = (agent.workspace_id, agent.agent_id)
        elif binding is not None and binding.agent_id is not None:
            key = (binding.workspace_id, binding.agent_id)
        if self._following is not None and self._following[0] == key:
            return
        self._unfollow()
        if key is not None:
            self._following = (key, self._hub.buses.bus(key).subscribe(self._on_wake))


def _ignore(wake: Wake) -> None:
    return None
