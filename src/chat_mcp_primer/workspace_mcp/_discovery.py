from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import anyio
import mcp_types

from chat_mcp_primer._tasks import TaskGroup
from chat_mcp_primer.clock import Clock, run_with_timeout
from chat_mcp_primer.events import Events
from chat_mcp_primer.workspace import AgentMcp, McpEndpoint
from chat_mcp_primer.workspace_mcp._cache import CacheKey, ToolCache
from chat_mcp_primer.workspace_mcp._failures import describe_failure
from chat_mcp_primer.workspace_mcp._listing import RemoteTool, clean_listing
from chat_mcp_primer.workspace_mcp._sessions import McpSession, McpSessions
from chat_mcp_primer.workspace_mcp._settings import PrimerSettings

LIST_TAGS = ("workspace-mcp", "list")


class Outcome(StrEnum):
    """How one discovery attempt ended."""

    OK = "ok"  # every endpoint listed tools
    PARTIAL = "partial"  # some endpoints listed tools, others not yet
    EMPTY = "empty"  # reachable, but nothing listed yet
    ERROR = "error"  # no endpoint listed tools, and at least one failed
    NO_AGENT = "no_agent"  # the workspace has no agent right now (stopped, still building)
    NO_ENDPOINTS = "no_endpoints"  # the agent exposes no MCP server: confirmed empty


@dataclass(frozen=True, slots=True)
class DiscoveryResult:
    outcome: Outcome
    tools: tuple[RemoteTool, ...] = ()
    agent: AgentMcp | None = None
    # Why each server that failed in this attempt failed, by server name.
    failures: Mapping[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """True when nothing is left to discover for this agent."""
        return self.outcome in (Outcome.OK, Outcome.NO_ENDPOINTS)


class ListingError(Exception):
    """A server's listing could not be completed (page cap, tool cap, repeated cursor)."""


async def list_all_tools(session: McpSession, max_pages: int, max_tools: int) -> list[mcp_types.Tool]:
    """Every page of a server's listing, or `ListingError`: a partial listing is never returned, and one
    of more than ``max_tools`` tools is refused as soon as a page takes it past that."""
    tools: list[mcp_types.Tool] = []
    cursors_seen: set[str] = set()
    cursor: str | None = None
    for _ in range(max_pages):
        page = await session.list_tools_page(cursor)
        tools.extend(page.tools)
        if len(tools) > max_tools:
            raise ListingError(f"the listing holds more than {max_tools} tools")
        cursor = page.next_cursor
        if cursor is None:
            return tools
        if cursor in cursors_seen:
            raise ListingError("the server repeated a pagination cursor")
        cursors_seen.add(cursor)
    raise ListingError(f"the listing did not end within {max_pages} pages")


@dataclass(slots=True)
class _Flight:
    """One listing in progress, which later callers for the same server join instead of listing again."""

    done: anyio.Event = field(default_factory=anyio.Event)
    finished: bool = False
    tools: tuple[RemoteTool, ...] | None = None
    failure: str | None = None


class Discovery:
    """One discovery attempt for an agent's MCP servers. `attempt` never raises.

    Servers whose complete listing is cached are answered from the cache with no network traffic; the
    others are dialled (within ``dial_timeout``) and listed in full (within ``discovery_timeout``),
    concurrently. Concurrent attempts for the same (workspace, agent, server), from any number of chats,
    share one listing in flight. Only non-empty, complete listings are cached, under the generation read
    before the fetch started; one overtaken by an invalidation is returned to its callers but not cached.
    """

    def __init__(
        self,
        sessions: McpSessions,
        cache: ToolCache,
        clock: Clock,
        settings: PrimerSettings,
        events: Events,
        on_listed: Callable[[CacheKey], None] | None = None,
    ) -> None:
        self._sessions = sessions
        self._cache = cache
        self._clock = clock
        self._settings = settings
        self._events = events
        # Told when a server's tools were listed and cached: other chats waiting on it can stop waiting.
        self._on_listed = on_listed
        self._flights: dict[CacheKey, _Flight] = {}
        self.listings = 0

    async def attempt(self, agent: AgentMcp) -> DiscoveryResult:
        if not agent.endpoints:
            return DiscoveryResult(Outcome.NO_ENDPOINTS, agent=agent)
        per_server: dict[str, tuple[RemoteTool, ...] | None] = {}
        failed: dict[str, str] = {}

        async def discover_server(endpoint: McpEndpoint) -> None:
            key = CacheKey(agent.workspace_id, agent.agent_id, endpoint.server)
            cached = await self._cache.get(key)
            if cached:
                self._events.emit("discovery.cache_hit", server=endpoint.server, agent_id=agent.agent_id)
                per_server[endpoint.server] = cached
                return
            tools = await self._fetch(key, endpoint, failed)
            per_server[endpoint.server] = tools or None

        if len(agent.endpoints) == 1:  # the usual workspace: no task needed
            await discover_server(agent.endpoints[0])
        else:
            async with TaskGroup() as group:
                for endpoint in agent.endpoints:
                    group.start_soon(discover_server, endpoint)

        listings = [per_server.get(endpoint.server) or () for endpoint in agent.endpoints]
        # One server's listing is handed on as the cache's own tuple, so consumers can tell an unchanged
        # catalogue by identity without comparing every tool.
        tools = listings[0] if len(listings) == 1 else tuple(itertools.chain.from_iterable(listings))
        listed = sum(1 for endpoint in agent.endpoints if per_server.get(endpoint.server))
        if listed == len(agent.endpoints):
            outcome = Outcome.OK
        elif listed:
            outcome = Outcome.PARTIAL
        elif failed:
            outcome = Outcome.ERROR
        else:
            outcome = Outcome.EMPTY
        return DiscoveryResult(outcome, tools=tools, agent=agent, failures=failed)

    async def _fetch(
        self, key: CacheKey, endpoint: McpEndpoint, failures: dict[str, str]
    ) -> tuple[RemoteTool, ...] | None:
        """The server's usable tools (possibly empty), or None when it failed (the reason recorded in
        ``failures``), joining a listing already in flight for the same server. Never raises."""
        flight = self._flights.get(key)
        if flight is not None:
            self._events.emit("discovery.joined_listing", server=endpoint.server, agent_id=key.agent_id)
            await flight.done.wait()
            if flight.finished:
                if flight.failure is not None:
                    failures[endpoint.server] = flight.failure
                return flight.tools
            # The caller that listed was cancelled before it finished: list ourselves.
        flight = _Flight()
        self._flights[key] = flight
        try:
            flight.tools = await self._list(key, endpoint, failures)
            flight.failure = failures.get(endpoint.server)
            flight.finished = True
            return flight.tools
        finally:
            flight.done.set()
            if self._flights.get(key) is flight:
                del self._flights[key]

    async def _list(
        self, key: CacheKey, endpoint: McpEndpoint, failures: dict[str, str]
    ) -> tuple[RemoteTool, ...] | None:
        self.listings += 1
        generation = await self._cache.generation(key)
        session: McpSession | None = None
        try:
            session = await self._sessions.session(key, endpoint)
            opened = session

            async def list_everything() -> list[mcp_types.Tool]:
                return await list_all_tools(opened, self._settings.max_list_pages, self._settings.max_tools_per_server)

            listed = await run_with_timeout(self._clock, self._settings.discovery_timeout, list_everything, *LIST_TAGS)
        except Exception as exc:
            reason = str(exc) if isinstance(exc, ListingError) else describe_failure(exc)
            failures[endpoint.server] = reason
            self._events.emit("discovery.server_failed", server=endpoint.server, agent_id=key.agent_id, reason=reason)
            if session is not None:
                # A session that failed a listing may be broken (terminated, half-closed): redial next time.
                self._sessions.discard(session)
            return None
        tools = clean_listing(endpoint.server, listed, self._settings, self._events)
        if tools:
            session.warm = True
        if tools and not await self._cache.put(key, tools, generation):
            # Invalidated while we listed (list_changed, a new agent): this listing may already be old, so
            # it is not cached. It is still the newest the server gave, so this attempt offers it: during
            # a storm of list_changed every listing is overtaken, and offering none would hide every tool.
            self._events.emit("discovery.stale_listing_dropped", server=endpoint.server, agent_id=key.agent_id)
            return tools
        self._events.emit("discovery.server_listed", server=endpoint.server, agent_id=key.agent_id, tools=len(tools))
        if tools and self._on_listed is not None:
            self._on_listed(key)
        return tools
