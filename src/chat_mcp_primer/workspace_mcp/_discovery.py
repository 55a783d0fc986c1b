from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType

import anyio
import mcp_types

from chat_mcp_primer._tasks import TaskGroup
from chat_mcp_primer.clock import Clock, run_with_timeout, tags
from chat_mcp_primer.events import EventName, Events
from chat_mcp_primer.workspace import AgentMcp, McpEndpoint
from chat_mcp_primer.workspace_mcp._cache import CacheKey, ListedElsewhere, SharedToolCache, ToolCache
from chat_mcp_primer.workspace_mcp._failures import describe_failure, worth_retrying
from chat_mcp_primer.workspace_mcp._listing import RemoteTool, clean_listing
from chat_mcp_primer.workspace_mcp._report import ServerStatus
from chat_mcp_primer.workspace_mcp._reports import KnownReports, NoReport, ReportFound, ReportReader
from chat_mcp_primer.workspace_mcp._session import McpSession
from chat_mcp_primer.workspace_mcp._sessions import McpSessions
from chat_mcp_primer.workspace_mcp._settings import ListingLimits

# The failures of an attempt in which nothing failed (the usual one), shared.
_NONE: Mapping[str, str] = MappingProxyType({})


class Outcome(StrEnum):
    """How one discovery attempt ended."""

    OK = "ok"  # every endpoint listed tools
    PARTIAL = "partial"  # some endpoints listed tools, others not yet
    EMPTY = "empty"  # reachable, but nothing listed yet
    ERROR = "error"  # no endpoint listed tools, and at least one failed
    NO_AGENT = "no_agent"  # the workspace has no agent right now (stopped, still building)
    NO_ENDPOINTS = "no_endpoints"  # the agent exposes no MCP server: confirmed empty
    REPORTED_EMPTY = "reported_empty"  # every endpoint's report says all its servers were tried, none has tools


@dataclass(frozen=True, slots=True)
class MissingServer:
    """A server behind an endpoint that its discovery report says failed or has no tools, and why."""

    endpoint: str  # the endpoint's server name: its tools' prefix
    name: str
    status: ServerStatus
    reason: str | None


@dataclass(frozen=True, slots=True)
class DiscoveryResult:
    outcome: Outcome
    tools: tuple[RemoteTool, ...] = ()
    agent: AgentMcp | None = None
    # Why each server that failed in this attempt failed, by server name.
    failures: Mapping[str, str] = field(default_factory=lambda: _NONE)
    # The servers whose failure asking again in this turn cannot mend (the app proxy refused the session
    # token or the app): a subset of ``failures``.
    final_failures: frozenset[str] = frozenset()
    # The servers whose discovery report is pending: nothing was listed for them, and waiting will tell.
    pending: frozenset[str] = frozenset()
    # What the reports say of the servers behind the endpoints that failed or have no tools.
    missing: tuple[MissingServer, ...] = ()

    @property
    def complete(self) -> bool:
        """True when nothing is left to discover for this agent."""
        return self.outcome is Outcome.OK or self.confirmed_empty

    @property
    def confirmed_empty(self) -> bool:
        """True when the agent has nothing to list, and waiting would not change that: no MCP endpoint, or
        every endpoint's report says each of its servers was tried and none has tools."""
        return self.outcome in (Outcome.NO_ENDPOINTS, Outcome.REPORTED_EMPTY)

    @property
    def futile(self) -> bool:
        """True when another attempt in this turn cannot find more: every server that did not list tools
        failed in a way only a person can mend (signing in again, an administrator's setting)."""
        unlisted = self.outcome in (Outcome.PARTIAL, Outcome.ERROR) and not self.pending
        return unlisted and bool(self.final_failures) and self.final_failures == frozenset(self.failures)


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


@dataclass(frozen=True, slots=True)
class _Listed:
    """What one listing of one server gave: its usable tools (possibly none), or why it failed."""

    tools: tuple[RemoteTool, ...] = ()
    failure: str | None = None
    # False when the failure is one asking again in this turn cannot mend.
    worth_retrying: bool = True
    # What the server's discovery report said, when it has one: still pending (nothing listed), or every
    # server behind it tried with no tools (nothing to list); and which of them failed or have none.
    pending: bool = False
    reported_empty: bool = False
    missing: tuple[MissingServer, ...] = ()
    # The report's run: what is listed now belongs to it, and what was listed in another is withheld.
    run_id: str | None = None


# What an endpoint without a discovery report (or with one that says "go on and list") contributes.
_NO_REPORT = _Listed()


@dataclass(slots=True)
class _Flight:
    """One listing in progress, which later callers for the same server join instead of listing again."""

    done: anyio.Event = field(default_factory=anyio.Event)
    listed: _Listed | None = None  # None until it finished: a cancelled lister leaves it so


class Discovery:
    """One discovery attempt for an agent's MCP servers. `attempt` never raises.

    Servers whose complete listing is cached are answered from the cache with no network traffic; the
    others are dialled (within ``dial_timeout``) and listed in full (within ``discovery_timeout``),
    concurrently. Concurrent attempts for the same (workspace, agent, server), from any number of chats,
    share one listing in flight. Only non-empty, complete listings are cached, under the generation read
    before the fetch started; one overtaken by an invalidation is returned to its callers but not cached.

    With a `ReportReader`, a server that publishes a discovery report is asked for it first: a pending
    report lists nothing (until ``report_pending_limit``), a complete one with no tools lists nothing and
    settles the server, and tools cached in another run of the report are withheld (`RemoteTool.run_id`).

    With a `SharedToolCache`, a listing is shared by every process on the cache too: one lists, the
    others wait for it (at most ``shared_wait``, a listing's own bound) and take what it found.
    """

    def __init__(
        self,
        sessions: McpSessions,
        cache: ToolCache,
        clock: Clock,
        limits: ListingLimits,
        events: Events,
        on_listed: Callable[[CacheKey], None] | None = None,
        *,
        reports: ReportReader | None = None,
        report_pending_limit: float = 0.0,
        shared_wait: float = 0.0,
    ) -> None:
        self._sessions = sessions
        self._cache = cache
        self._shared = cache if isinstance(cache, SharedToolCache) else None
        self._shared_wait = shared_wait
        self._clock = clock
        self._limits = limits
        self._events = events
        # Told when a server's tools were listed and cached: other chats waiting on it can stop waiting.
        self._on_listed = on_listed
        self._flights: dict[CacheKey, _Flight] = {}
        self.listings = 0
        # Discovery reports are read only with a reader (the primed strategy's hub gives one).
        self._reports = reports
        self._pending_limit = report_pending_limit
        self.known_reports = KnownReports()

    async def attempt(self, agent: AgentMcp, events: Events | None = None) -> DiscoveryResult:
        """One attempt for ``agent``'s servers; ``events``, the attempting chat's (the hub's by default),
        tell what this attempt did: a cache hit, joining a listing in flight. A listing's own events
        (shared by every chat that joins it) carry the agent."""
        if not agent.endpoints:
            return DiscoveryResult(Outcome.NO_ENDPOINTS, agent=agent)
        told = events or self._events
        per_server: dict[str, _Listed] = {}

        async def discover_server(endpoint: McpEndpoint) -> None:
            key = CacheKey(agent.workspace_id, agent.agent_id, endpoint.server)
            per_server[endpoint.server] = await self._discover(key, endpoint, told)

        if len(agent.endpoints) == 1:  # the usual workspace: no task needed
            await discover_server(agent.endpoints[0])
            only = per_server[agent.endpoints[0].server]
            if only.tools and not only.missing:
                # Its one server listed (or was cached), nothing failed: the result every later turn
                # of a chat gets, built without the general case's tallies.
                return DiscoveryResult(Outcome.OK, tools=only.tools, agent=agent)
        else:
            async with TaskGroup() as group:
                for endpoint in agent.endpoints:
                    group.start_soon(discover_server, endpoint)

        listings = [per_server[endpoint.server].tools for endpoint in agent.endpoints]
        # One server's listing is handed on as the cache's own tuple, so consumers can tell an unchanged
        # catalogue by identity without comparing every tool.
        tools = listings[0] if len(listings) == 1 else tuple(itertools.chain.from_iterable(listings))
        failed = {server: listed.failure for server, listed in per_server.items() if listed.failure is not None}
        final = frozenset(server for server, listed in per_server.items() if not listed.worth_retrying)
        listed = sum(1 for tools in listings if tools)
        settled = sum(1 for said in per_server.values() if said.reported_empty)
        if settled == len(agent.endpoints):
            outcome = Outcome.REPORTED_EMPTY
        elif listed and listed + settled == len(agent.endpoints):
            outcome = Outcome.OK
        elif listed:
            outcome = Outcome.PARTIAL
        elif failed:
            outcome = Outcome.ERROR
        else:
            outcome = Outcome.EMPTY
        return DiscoveryResult(
            outcome,
            tools=tools,
            agent=agent,
            failures=MappingProxyType(failed) if failed else _NONE,
            final_failures=final,
            pending=frozenset(server for server, said in per_server.items() if said.pending),
            missing=tuple(itertools.chain.from_iterable(per_server[e.server].missing for e in agent.endpoints)),
        )

    async def _discover(self, key: CacheKey, endpoint: McpEndpoint, events: Events) -> _Listed:
        """One server's part of an attempt: what its report says, then its tools (cached, or listed)."""
        speculative: _Listed | None = None
        stamped = self.known_reports.run_of(key)
        if self.known_reports.take_announced(key):
            # The server said its tools changed while its report was pending: read the report and list at
            # once, so the listing need not wait for the read. It is dropped if the report is still pending.
            said, speculative = await self._read_and_list(key, endpoint, events, stamped)
        else:
            said = await self._read_report(key, endpoint, events)
        if said.pending or said.reported_empty:
            if said.pending:
                # A session open meanwhile hears the gateway tell of each server coming up
                # (``tools/list_changed``), and the listing that follows needs no dial.
                self._sessions.open(key, endpoint)
            return said  # nothing is offered from a pending report, nor from one with no tools
        if speculative is not None and speculative.failure is None and said.run_id == stamped:
            return replace(speculative, missing=said.missing, run_id=said.run_id)
        cached = await self._cache.get(key)
        if cached and said.run_id is not None and cached[0].run_id != said.run_id:
            # The gateway restarted: what its previous run listed is withheld until this run lists it.
            events.emit(EventName.DISCOVERY_REPORT_NEW_RUN, server=endpoint.server, agent_id=key.agent_id)
            await self._cache.invalidate(key)
            cached = None
        if cached:
            events.emit(EventName.DISCOVERY_CACHE_HIT, server=endpoint.server, agent_id=key.agent_id)
            return _Listed(cached) if said is _NO_REPORT else replace(said, tools=cached)
        listed = await self._fetch(key, endpoint, events, said.run_id)
        return replace(listed, missing=said.missing) if said.missing else listed

    async def _read_and_list(
        self, key: CacheKey, endpoint: McpEndpoint, events: Events, run_id: str | None
    ) -> tuple[_Listed, _Listed]:
        found: dict[str, _Listed] = {}

        async def read() -> None:
            found["said"] = await self._read_report(key, endpoint, events)

        async def list_tools() -> None:
            found["listed"] = await self._fetch(key, endpoint, events, run_id)

        async with TaskGroup() as group:
            group.start_soon(read)
            group.start_soon(list_tools)
        return found["said"], found["listed"]

    async def _read_report(self, key: CacheKey, endpoint: McpEndpoint, events: Events) -> _Listed:
        """What the server's discovery report says, as far as this attempt goes: pending (list nothing yet),
        reported empty (nothing to list), or go on and list; an empty `_Listed` when it has none."""
        if self._reports is None or not self.known_reports.publishes(key, endpoint):
            return _NO_REPORT
        read = await self._reports.read(endpoint)
        if isinstance(read, NoReport):
            self.known_reports.absent(key)
            events.emit(
                EventName.DISCOVERY_NO_REPORT, server=endpoint.server, agent_id=key.agent_id, reason=read.reason
            )
            return _NO_REPORT
        if not isinstance(read, ReportFound):
            return _NO_REPORT  # not readable now: discovery goes on as if there were none
        report = read.report
        now = self._clock.now()
        pending_since = self.known_reports.seen(key, report, now)
        missing = tuple(
            MissingServer(endpoint.server, name, server.status, server.reason)
            for name, server in report.missing().items()
        )
        if report.confirmed_empty:
            events.emit(EventName.DISCOVERY_REPORTED_EMPTY, server=endpoint.server, agent_id=key.agent_id)
            return _Listed(reported_empty=True, missing=missing, run_id=report.run_id)
        if pending_since is not None:
            if now - pending_since < self._pending_limit:
                events.emit(EventName.DISCOVERY_REPORT_PENDING, server=endpoint.server, agent_id=key.agent_id)
                return _Listed(pending=True, missing=missing, run_id=report.run_id)
            events.emit(EventName.DISCOVERY_REPORT_FAILS_OPEN, server=endpoint.server, agent_id=key.agent_id)
        return _Listed(missing=missing, run_id=report.run_id)

    async def _fetch(self, key: CacheKey, endpoint: McpEndpoint, events: Events, run_id: str | None) -> _Listed:
        """What listing the server gives, joining a listing already in flight for it. Never raises."""
        flight = self._flights.get(key)
        if flight is not None:
            events.emit(EventName.DISCOVERY_JOINED_LISTING, server=endpoint.server, agent_id=key.agent_id)
            await flight.done.wait()
            if flight.listed is not None:
                return flight.listed
            # The caller that listed was cancelled before it finished: list ourselves.
        flight = _Flight()
        self._flights[key] = flight
        try:
            flight.listed = await self._list_once(key, endpoint, run_id)
            return flight.listed
        finally:
            flight.done.set()
            if self._flights.get(key) is flight:
                del self._flights[key]

    async def _list_once(self, key: CacheKey, endpoint: McpEndpoint, run_id: str | None) -> _Listed:
        """The server's listing, made here or, on a shared cache, by whichever process makes it first."""
        if self._shared is None:
            return await self._list(key, endpoint, run_id)
        async with self._shared.listing(key, self._shared_wait) as turn:
            if turn.elsewhere is not None:
                return self._listed_elsewhere(key, turn.elsewhere)
            listed = await self._list(key, endpoint, run_id)
            turn.finished(listed.tools, listed.failure, final=not listed.worth_retrying)
            return listed

    def _listed_elsewhere(self, key: CacheKey, elsewhere: ListedElsewhere) -> _Listed:
        events = self._events.bind(agent_id=key.agent_id)
        if elsewhere.failure is not None:
            events.emit(EventName.DISCOVERY_LISTED_ELSEWHERE, server=key.server, tools=0, reason=elsewhere.failure)
            return _Listed(failure=elsewhere.failure, worth_retrying=not elsewhere.final)
        events.emit(EventName.DISCOVERY_LISTED_ELSEWHERE, server=key.server, tools=len(elsewhere.tools))
        if self._on_listed is not None:
            self._on_listed(key)
        return _Listed(elsewhere.tools)

    async def _list(self, key: CacheKey, endpoint: McpEndpoint, run_id: str | None) -> _Listed:
        self.listings += 1
        # A listing is shared by every chat that joins it: its events say which agent's server it was.
        events = self._events.bind(agent_id=key.agent_id)
        generation = await self._cache.generation(key)
        session: McpSession | None = None
        try:
            session = await self._sessions.session(key, endpoint)
            opened = session

            async def list_everything() -> list[mcp_types.Tool]:
                return await list_all_tools(opened, self._limits.max_list_pages, self._limits.max_tools_per_server)

            limit = self._limits.discovery_timeout
            listed = await run_with_timeout(self._clock, limit, list_everything, *tags.MCP_LIST)
        except Exception as exc:
            reason = str(exc) if isinstance(exc, ListingError) else describe_failure(exc)
            events.emit(EventName.DISCOVERY_SERVER_FAILED, server=endpoint.server, reason=reason)
            if session is not None:
                # A session that failed a listing may be broken (terminated, half-closed): redial next time.
                self._sessions.discard(session)
            return _Listed(failure=reason, worth_retrying=worth_retrying(exc))
        tools = clean_listing(endpoint.server, listed, self._limits, events, run_id)
        if tools:
            session.warm = True
        if tools and not await self._cache.put(key, tools, generation):
            # Invalidated while we listed (list_changed, a new agent): this listing may already be old, so
            # it is not cached. It is still the newest the server gave, so this attempt offers it: during
            # a storm of list_changed every listing is overtaken, and offering none would hide every tool.
            events.emit(EventName.DISCOVERY_STALE_LISTING_DROPPED, server=endpoint.server)
            return _Listed(tools)
        events.emit(EventName.DISCOVERY_SERVER_LISTED, server=endpoint.server, tools=len(tools))
        if tools and self._on_listed is not None:
            self._on_listed(key)
        return _Listed(tools)
