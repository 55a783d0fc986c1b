"""The workspace MCP state every chat of a runtime shares: sessions, the tool cache, listings in flight,
the agents' wake-up buses, and the turns it makes."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import TracebackType

from chat_mcp_primer._tasks import BackgroundTasks
from chat_mcp_primer.clock import Clock, tags
from chat_mcp_primer.events import EventName, Events
from chat_mcp_primer.model import WorkspaceBinding
from chat_mcp_primer.workspace import WorkspaceMcpSource
from chat_mcp_primer.workspace_mcp._bus import AgentBuses, Wake, WakeKind
from chat_mcp_primer.workspace_mcp._cache import CacheKey, CacheNews, NewsKind, SharedToolCache, ToolCache
from chat_mcp_primer.workspace_mcp._deadlines import Deadlines
from chat_mcp_primer.workspace_mcp._discovery import Discovery
from chat_mcp_primer.workspace_mcp._offers import ToolOffers
from chat_mcp_primer.workspace_mcp._pacing import Pacer
from chat_mcp_primer.workspace_mcp._reports import ReportReader
from chat_mcp_primer.workspace_mcp._sessions import McpSessions
from chat_mcp_primer.workspace_mcp._settings import ListingLimits, PrimerSettings, SessionSettings
from chat_mcp_primer.workspace_mcp._strategy import strategy_for
from chat_mcp_primer.workspace_mcp._turn import TurnWorkspace


class WorkspaceMcpHub:
    """Shared by the turns of every chat of one `ChatRuntime`, and the one way to make a turn (`turn`).

    Sessions are long-lived: reused across attempts, turns and chats of the same agent, closed when idle,
    when the agent changes, and when the hub closes. Concurrent listings of one server are shared, and so
    are the feeds of each agent's wake-up bus. A server's ``tools/list_changed`` invalidates its cache
    entry (a generation bump, so a listing already in flight cannot write the old catalogue back) and is
    published on its agent's bus. On a `SharedToolCache`, what other processes change is published too.

    Use as an async context manager: leaving it ends the feeds and deadlines, then closes the sessions.
    """

    def __init__(
        self,
        *,
        cache: ToolCache,
        clock: Clock,
        events: Events,
        primer: PrimerSettings | None = None,
        sessions: SessionSettings | None = None,
        listing: ListingLimits | None = None,
    ) -> None:
        self.cache = cache
        self.clock = clock
        self.events = events
        self.strategy = strategy_for(primer or PrimerSettings())
        session_settings = sessions or SessionSettings()
        self.sessions = McpSessions(clock, session_settings, events, on_tools_changed=self._tools_changed)
        # The hub's own background work: the buses' feeds, the held steps' deadlines, the pacer's passes.
        self._background = BackgroundTasks()
        self.buses = AgentBuses(self._background)
        # When held steps stop waiting for their primers (`PrimerSettings.prepare_wait`).
        self.hold_deadlines = Deadlines(clock, self._background, *tags.PREPARE_WAIT)
        # Turns, primers and discovery attempts that many chats start at once go a few per event-loop pass.
        self.pacer = Pacer(self.strategy.settings.admissions_per_pass, self._background)
        self.listing = listing or ListingLimits()
        # Reads the discovery reports endpoints publish (the reference strategy predates them: it reads none).
        self.reports = ReportReader(clock, self.listing)
        self.discovery = Discovery(
            self.sessions,
            cache,
            clock,
            self.listing,
            events,
            self._listed,
            reports=self.reports if self.strategy.reads_reports else None,
            report_pending_limit=self.strategy.settings.report_pending_limit,
            # Another process's listing of a server is waited for as long as one listing may take.
            shared_wait=session_settings.dial_timeout + self.listing.discovery_timeout,
        )
        self.offers = ToolOffers(self.sessions, clock, session_settings.call_timeout)
        # The agent each workspace was last seen with, so a change of agent is noticed once.
        self._agents: dict[str, str] = {}
        self._detach: Callable[[], None] | None = None

    async def __aenter__(self) -> WorkspaceMcpHub:
        await self.sessions.__aenter__()
        try:
            await self._background.__aenter__()
        except BaseException:
            await self.sessions.__aexit__(None, None, None)
            raise
        if isinstance(self.cache, SharedToolCache):
            self._detach = self.cache.attach(self.events, self._heard)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        detach, self._detach = self._detach, None
        if detach is not None:
            detach()
        try:  # feeds, probes and deadlines end first, then the sessions and the report reader close
            await self._background.__aexit__(exc_type, exc, traceback)
        finally:
            try:
                await self.sessions.__aexit__(exc_type, exc, traceback)
            finally:
                await self.reports.__aexit__(exc_type, exc, traceback)

    def turn(
        self,
        *,
        chat_id: str,
        binding: WorkspaceBinding | None,
        source: WorkspaceMcpSource,
        reserved_names: Iterable[str] = (),
    ) -> TurnWorkspace:
        """The workspace side of one turn of chat ``chat_id``, on this hub's cache, clock, settings and events."""
        return TurnWorkspace(self, chat_id=chat_id, binding=binding, source=source, reserved_names=reserved_names)

    def forget_other_agents(self, workspace_id: str, keep_agent_id: str | None) -> None:
        """The workspace's agent is now ``keep_agent_id``: close its other agents' sessions, drop their tools."""
        self.sessions.close_other_agents(workspace_id, keep_agent_id)
        self.offers.forget_other_agents(workspace_id, keep_agent_id)
        self.discovery.known_reports.forget_other_agents(workspace_id, keep_agent_id)

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

    async def _tools_changed(self, key: CacheKey) -> None:
        self.events.emit(EventName.DISCOVERY_CATALOGUE_CHANGED, server=key.server, agent_id=key.agent_id)
        await self.cache.invalidate(key)
        self.discovery.known_reports.announce(key)
        self.buses.publish((key.workspace_id, key.agent_id), Wake(WakeKind.TOOLS_CHANGED, key.server))

    def _heard(self, news: CacheNews) -> None:
        """Another process changed the shared cache (its copy here is already gone): the chats here hear it
        as they would hear it from the server."""
        self.events.emit(
            EventName.CACHE_NEWS,
            kind=news.kind.value,
            workspace_id=news.workspace_id,
            agent_id=news.agent_id,
            server=news.server,
        )
        workspace_id = news.workspace_id
        if news.kind is NewsKind.AGENTS_FORGOTTEN:
            if news.agent_id is None:
                self._agents.pop(workspace_id, None)
            else:
                self._agents[workspace_id] = news.agent_id
            self.forget_other_agents(workspace_id, news.agent_id)
            return
        agent_id = news.agent_id or self._agents.get(workspace_id)
        if agent_id is None:
            return  # no chat here is on the workspace
        if news.kind is NewsKind.LISTED and news.server is not None:
            self._listed(CacheKey(workspace_id, agent_id, news.server))
        else:  # a server's, or the whole workspace's, tools changed
            self.buses.publish((workspace_id, agent_id), Wake(WakeKind.TOOLS_CHANGED, news.server or "workspace"))

    def _listed(self, key: CacheKey) -> None:
        self.buses.publish((key.workspace_id, key.agent_id), Wake(WakeKind.SERVER_LISTED, key.server))
