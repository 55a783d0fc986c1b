"""The workspace tools offered for each agent's listing: built once, shared by every chat, names kept."""

from __future__ import annotations

from dataclasses import dataclass

from chat_mcp_primer.clock import Clock
from chat_mcp_primer.workspace import AgentMcp
from chat_mcp_primer.workspace_mcp._cache import CacheKey
from chat_mcp_primer.workspace_mcp._listing import RemoteTool
from chat_mcp_primer.workspace_mcp._naming import ToolNames
from chat_mcp_primer.workspace_mcp._proxy import WorkspaceMcpTool
from chat_mcp_primer.workspace_mcp._session import McpSession
from chat_mcp_primer.workspace_mcp._sessions import McpSessions


@dataclass(frozen=True, slots=True)
class OfferedTools:
    """The workspace tools built for one listing, and their exposed names (for events)."""

    tools: tuple[WorkspaceMcpTool, ...] = ()
    names: tuple[str, ...] = ()


NOTHING_OFFERED = OfferedTools()


@dataclass(slots=True)
class _Offer:
    """What one agent's tools look like to turns with one set of built-in names: the exposed names
    assigned so far, and the tools built for the latest listing."""

    names: ToolNames
    listing: tuple[RemoteTool, ...] | None = None
    offered: OfferedTools = NOTHING_OFFERED


class ToolOffers:
    """The tools to offer for each agent's listing, named around each set of built-in tool names; each
    tool calls through a session of ``sessions``, within ``call_timeout`` on ``clock``."""

    __slots__ = ("_call_timeout", "_clock", "_offers", "_sessions")

    def __init__(self, sessions: McpSessions, clock: Clock, call_timeout: float) -> None:
        self._sessions = sessions
        self._clock = clock
        self._call_timeout = call_timeout
        self._offers: dict[tuple[str, str, frozenset[str]], _Offer] = {}

    def offer(self, agent: AgentMcp, reserved: frozenset[str], listing: tuple[RemoteTool, ...]) -> OfferedTools:
        """The tools to offer for ``listing`` (the agent's discovered tools), named around ``reserved``
        (the turn's built-in tool names).

        Built once per listing and shared by every turn and chat of the agent with the same built-ins: a
        new turn on a warm cache builds nothing, and a tool keeps its exposed name across turns, so a
        chat's history stays consistent. A listing that did not change is recognised by identity (the
        cache hands out the same tuple) or, failing that, by equality.
        """
        key = (agent.workspace_id, agent.agent_id, reserved)
        offer = self._offers.get(key)
        if offer is None:
            offer = self._offers[key] = _Offer(ToolNames(reserved))
        if listing is offer.listing or listing == offer.listing:
            return offer.offered
        by_origin = {(tool.remote.server, tool.remote.name): tool for tool in offer.offered.tools}
        tools = []
        for remote in listing:
            tool = by_origin.get((remote.server, remote.name))
            if tool is None or tool.remote != remote:
                tool = self._wrap(agent, remote, offer.names.exposed(remote.server, remote.name))
            tools.append(tool)
        offer.listing = listing
        offer.offered = OfferedTools(tuple(tools), tuple(tool.spec.name for tool in tools))
        return offer.offered

    def forget_other_agents(self, workspace_id: str, keep_agent_id: str | None) -> None:
        for key in [k for k in self._offers if k[0] == workspace_id and k[1] != keep_agent_id]:
            del self._offers[key]

    def _wrap(self, agent: AgentMcp, remote: RemoteTool, exposed: str) -> WorkspaceMcpTool:
        endpoint = next(e for e in agent.endpoints if e.server == remote.server)
        key = CacheKey(agent.workspace_id, agent.agent_id, remote.server)
        sessions = self._sessions

        async def open_session() -> McpSession:
            return await sessions.session(key, endpoint)

        return WorkspaceMcpTool(exposed, remote, open_session, self._clock, self._call_timeout)
