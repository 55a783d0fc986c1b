"""The workspace MCP state every chat of a runtime shares: sessions, the tool cache, listings in flight."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from chat_mcp_primer.clock import Clock
from chat_mcp_primer.events import Events
from chat_mcp_primer.workspace_mcp._cache import CacheKey, ToolCache
from chat_mcp_primer.workspace_mcp._discovery import Discovery
from chat_mcp_primer.workspace_mcp._proxy import WorkspaceMcpTool
from chat_mcp_primer.workspace_mcp._sessions import McpSessions
from chat_mcp_primer.workspace_mcp._settings import PrimerSettings

CatalogueListener = Callable[[CacheKey], None]


class WorkspaceMcpHub:
    """Shared by the turns of every chat of one `ChatRuntime`, for as long as its ``async with`` block.

    Sessions are long-lived: reused across attempts, turns and chats of the same agent, closed when idle,
    when the agent changes, and when the hub closes. Concurrent listings of one server are shared. A
    server's ``tools/list_changed`` invalidates its cache entry (a generation bump, so a listing already in
    flight cannot write the old catalogue back) and tells the turns listening for that server.
    """

    def __init__(self, *, cache: ToolCache, clock: Clock, settings: PrimerSettings, events: Events) -> None:
        self.cache = cache
        self.events = events
        self.sessions = McpSessions(clock, settings, events, on_tools_changed=self._tools_changed)
        self.discovery = Discovery(self.sessions, cache, clock, settings, events)
        self._listeners: dict[CacheKey, list[CatalogueListener]] = {}
        # Tool wrappers by (workspace, agent, server, tool, exposed name): built once, offered by every turn
        # and chat of that agent.
        self.wrappers: dict[tuple[str, str, str, str, str], WorkspaceMcpTool] = {}

    async def __aenter__(self) -> WorkspaceMcpHub:
        await self.sessions.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.sessions.__aexit__(exc_type, exc, traceback)

    def forget_other_agents(self, workspace_id: str, keep_agent_id: str | None) -> None:
        """The workspace's agent is now ``keep_agent_id``: close its other agents' sessions, drop their tools."""
        self.sessions.close_other_agents(workspace_id, keep_agent_id)
        for index in [i for i in self.wrappers if i[0] == workspace_id and i[1] != keep_agent_id]:
            del self.wrappers[index]

    def listen(self, key: CacheKey, listener: CatalogueListener) -> None:
        """Call ``listener`` whenever the server at ``key`` says its tools changed (until `unlisten`)."""
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
        for listener in list(self._listeners.get(key, ())):
            listener(key)
