"""The workspace MCP state every chat of a runtime shares: sessions, the tool cache, listings in flight."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from types import TracebackType

from chat_mcp_primer._tasks import BackgroundTasks
from chat_mcp_primer.clock import Clock
from chat_mcp_primer.events import Events
from chat_mcp_primer.workspace import AgentMcp
from chat_mcp_primer.workspace_mcp._cache import CacheKey, ToolCache
from chat_mcp_primer.workspace_mcp._deadlines import Deadlines
from chat_mcp_primer.workspace_mcp._discovery import Discovery
from chat_mcp_primer.workspace_mcp._listing import RemoteTool
from chat_mcp_primer.workspace_mcp._naming import ToolNames
from chat_mcp_primer.workspace_mcp._pacing import Pacer
from chat_mcp_primer.workspace_mcp._proxy import WorkspaceMcpTool
from chat_mcp_primer.workspace_mcp._sessions import McpSession, McpSessions
from chat_mcp_primer.workspace_mcp._settings import PrimerSettings
from chat_mcp_primer.workspace_mcp._signals import PREPARE_WAIT_TAGS, SharedSignals


class CatalogueNews(Enum):
    """What a turn listening to a server hears: its tools were just listed (and cached), or the server
    said they changed (the cached list is gone)."""

    LISTED = "listed"
    CHANGED = "changed"


CatalogueListener = Callable[[CacheKey, CatalogueNews], None]


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


class WorkspaceMcpHub:
    """Shared by the turns of every chat of one `ChatRuntime`, for as long as its ``async with`` block.

    Sessions are long-lived: reused across attempts, turns and chats of the same agent, closed when idle,
    when the agent changes, and when the hub closes. Concurrent listings of one server are shared, and so
    are workspace watches and connection probes. A server's ``tools/list_changed`` invalidates its cache
    entry (a generation bump, so a listing already in flight cannot write the old catalogue back) and
    tells the turns listening for that server.
    """

    def __init__(self, *, cache: ToolCache, clock: Clock, settings: PrimerSettings, events: Events) -> None:
        self.cache = cache
        self.events = events
        self.clock = clock
        self.settings = settings
        self.sessions = McpSessions(clock, settings, events, on_tools_changed=self._tools_changed)
        # The hub's own background work: shared watches, probes and held-step polls, the held steps' deadlines.
        self._background = BackgroundTasks()
        self.signals = SharedSignals(clock, settings, events, self._background)
        # When held steps stop waiting for their primers (`PrimerSettings.prepare_wait`).
        self.hold_deadlines = Deadlines(clock, self._background, *PREPARE_WAIT_TAGS)
        # Turns, primers and discovery attempts that many chats start at once go a few per event-loop pass.
        self.pacer = Pacer(settings.admissions_per_pass, self._background)
        self.discovery = Discovery(self.sessions, cache, clock, settings, events, on_listed=self._listed)
        self._listeners: dict[CacheKey, list[CatalogueListener]] = {}
        self._offers: dict[tuple[str, str, frozenset[str]], _Offer] = {}
        # The agent each workspace was last seen with, so a change of agent is noticed once.
        self._agents: dict[str, str] = {}
        self._parts: contextlib.AsyncExitStack | None = None

    async def __aenter__(self) -> WorkspaceMcpHub:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(self.sessions)
            await stack.enter_async_context(self._background)
            self._parts = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        parts, self._parts = self._parts, None
        if parts is not None:  # watches, probes and deadlines end first, then the sessions close
            await parts.__aexit__(exc_type, exc, traceback)

    def forget_other_agents(self, workspace_id: str, keep_agent_id: str | None) -> None:
        """The workspace's agent is now ``keep_agent_id``: close its other agents' sessions, drop their tools."""
        self.sessions.close_other_agents(workspace_id, keep_agent_id)
        for key in [k for k in self._offers if k[0] == workspace_id and k[1] != keep_agent_id]:
            del self._offers[key]

    async def agent_seen(self, workspace_id: str, agent_id: str | None) -> None:
        """A lookup found ``agent_id`` to be the workspace's agent now (None: it has none, e.g. stopped or
        deleted). Everything kept for its other agents goes: sessions, offered tools and cached listings.
        Rebuilds give workspaces new agents, so a long-lived runtime would otherwise keep every old one."""
        if self._agents.get(workspace_id) == agent_id:
            return  # no change (or a workspace with no agent that nothing was ever kept for)
        if agent_id is None:
            self._agents.pop(workspace_id, None)
        else:
            self._agents[workspace_id] = agent_id
        self.forget_other_agents(workspace_id, agent_id)
        await self.cache.forget_agents(workspace_id, agent_id)

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

    def _wrap(self, agent: AgentMcp, remote: RemoteTool, exposed: str) -> WorkspaceMcpTool:
        endpoint = next(e for e in agent.endpoints if e.server == remote.server)
        key = CacheKey(agent.workspace_id, agent.agent_id, remote.server)
        sessions = self.sessions

        async def open_session() -> McpSession:
            return await sessions.session(key, endpoint)

        return WorkspaceMcpTool(exposed, remote, open_session, self.clock, self.settings.call_timeout)

    def listen(self, key: CacheKey, listener: CatalogueListener) -> None:
        """Call ``listener`` whenever the server at ``key`` has its tools listed or says they changed
        (until `unlisten`)."""
        listeners = self._listeners.setdefault(key, [])
        if listener not in listeners:
            listeners.append(listener)

    def unlisten(self, key: CacheKey, listener: CatalogueListener) -> None:
        listeners = self._listeners.get(key, [])
        if listener in listeners:
            listeners.remove(listener)
        if not listeners:
            self._listeners.pop(key, None)

    async def _tools_changed(self, key: CacheKey) -> None:
        self.events.emit("discovery.catalogue_changed", server=key.server, agent_id=key.agent_id)
        await self.cache.invalidate(key)
        self._tell(key, CatalogueNews.CHANGED)

    def _listed(self, key: CacheKey) -> None:
        self._tell(key, CatalogueNews.LISTED)

    def _tell(self, key: CacheKey, news: CatalogueNews) -> None:
        for listener in list(self._listeners.get(key, ())):
            listener(key, news)
