"""Reading discovery reports (`McpEndpoint.report_url`), and what the hub remembers of them.

A report is read with the endpoint's own credentials, on the endpoint's own origin only, never following
a redirect and never decompressing: the body is counted raw as it arrives and cut off past
``ListingLimits.max_report_bytes``. An endpoint whose ``report_url`` answers with anything but a report (a
plain MCP server answers 404) is remembered to publish none for as long as its agent lives, so it costs
one request. A read may be conditional and long: with the ETag of the report last seen, the gateway
answers 304 if nothing changed, and with ``wait`` it holds the answer until something does (`Prefer:
wait`, RFC 7240), which is how a pending report is waited on without polling listings.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

import httpx2

from chat_mcp_primer.clock import Clock, run_with_timeout, tags
from chat_mcp_primer.workspace import McpEndpoint, origin_of
from chat_mcp_primer.workspace_mcp._bounds import IDENTITY_ONLY
from chat_mcp_primer.workspace_mcp._cache import CacheKey
from chat_mcp_primer.workspace_mcp._failures import describe_failure, proxy_answer
from chat_mcp_primer.workspace_mcp._report import DiscoveryReport, ReportError, parse_report
from chat_mcp_primer.workspace_mcp._session import shared_tls_context
from chat_mcp_primer.workspace_mcp._settings import ListingLimits

# Socket-level limits only (the Clock-driven report timeout decides); the read limit lets a long poll wait.
_TRANSPORT_TIMEOUT = httpx2.Timeout(30.0, read=300.0)
_OK = 200
_NOT_MODIFIED = 304
# What a server with no report at that path answers: not found, no such method, gone, not implemented.
_NOTHING_THERE = frozenset({404, 405, 410, 501})


@dataclass(frozen=True, slots=True)
class ReportFound:
    report: DiscoveryReport
    etag: str | None


@dataclass(frozen=True, slots=True)
class ReportUnchanged:
    """The report is still the one of the ETag asked with."""


@dataclass(frozen=True, slots=True)
class NoReport:
    """The endpoint publishes no report, or none that can be used; ``reason`` says which."""

    reason: str


@dataclass(frozen=True, slots=True)
class ReportFailed:
    """The report could not be read now (the app is not up, the proxy refused, a timeout): discovery goes
    on as if there were none, and asks again next time."""

    reason: str


ReportRead = ReportFound | ReportUnchanged | NoReport | ReportFailed


class ReportReader:
    """Reads the reports of endpoints; one HTTP client per TLS choice, closed with the reader."""

    def __init__(self, clock: Clock, limits: ListingLimits) -> None:
        self._clock = clock
        self._limits = limits
        self._clients: dict[bool, httpx2.AsyncClient] = {}

    async def __aenter__(self) -> ReportReader:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    async def read(self, endpoint: McpEndpoint, *, etag: str | None = None, wait: float = 0.0) -> ReportRead:
        """The endpoint's report. ``etag``: the one last seen (304 then says nothing changed); ``wait``: how
        long the gateway may hold its answer for a change. Never raises but for cancellation."""
        url = endpoint.report_url
        if url is None or origin_of(url) != origin_of(endpoint.url):
            return NoReport("the endpoint publishes no report on its own origin")
        headers = {**endpoint.headers, "accept": "application/json"}
        if etag is not None:
            headers["if-none-match"] = etag
        if wait > 0:
            headers["prefer"] = f"wait={int(wait)}"

        async def fetch() -> ReportRead:
            return await self._fetch(self._client(endpoint.verify_tls), url, headers)

        try:
            return await run_with_timeout(self._clock, self._limits.report_timeout + wait, fetch, *tags.MCP_REPORT)
        except Exception as exc:  # a transport failure, or the timeout
            return ReportFailed(describe_failure(exc))

    def _client(self, verify: bool) -> httpx2.AsyncClient:
        client = self._clients.get(verify)
        if client is None:
            client = self._clients[verify] = httpx2.AsyncClient(
                headers=IDENTITY_ONLY,
                timeout=_TRANSPORT_TIMEOUT,
                verify=shared_tls_context() if verify else False,
                follow_redirects=False,
            )
        return client

    async def _fetch(self, client: httpx2.AsyncClient, url: str, headers: dict[str, str]) -> ReportRead:
        async with client.stream("GET", url, headers=headers) as response:
            status = response.status_code
            if status == _NOT_MODIFIED:
                return ReportUnchanged()
            if status in _NOTHING_THERE:
                # A plain MCP server has no such route (its 404 may be an HTML page like the proxy's own).
                return NoReport(f"the report URL answered {status}")
            if status != _OK:
                answer = proxy_answer(response)
                return ReportFailed(answer.reason if answer is not None else f"the report URL answered {status}")
            if response.headers.get("content-encoding", "identity").lower() != "identity":
                return NoReport("the report came compressed unasked")
            body = bytearray()
            async for chunk in response.aiter_raw():
                body.extend(chunk)
                if len(body) > self._limits.max_report_bytes:
                    return NoReport(f"the report is over {self._limits.max_report_bytes} bytes")
            try:
                report = parse_report(bytes(body), self._limits)
            except ReportError as exc:
                return NoReport(str(exc))
            return ReportFound(report, response.headers.get("etag"))


@dataclass(slots=True)
class _Known:
    """What the hub knows of one server's report."""

    run_id: str | None = None
    # When the report was first seen pending in this run (`PrimerSettings.report_pending_limit`).
    pending_since: float | None = None


class KnownReports:
    """What the hub remembers of every endpoint's report: which publish none, and since when each has been
    pending in its run. Forgotten with the agent. (Which run cached tools belong to, the cache itself
    says: `RemoteTool.run_id`.)"""

    def __init__(self) -> None:
        self._absent: set[CacheKey] = set()
        self._known: dict[CacheKey, _Known] = {}
        # Servers with a pending report that said tools/list_changed since their report was last read.
        self._announced: set[CacheKey] = set()

    def run_of(self, key: CacheKey) -> str | None:
        """The run of the report last seen for ``key``, if one was."""
        known = self._known.get(key)
        return known.run_id if known is not None else None

    def announce(self, key: CacheKey) -> None:
        """The server said its tools changed: if its report was pending, the next attempt reads and lists
        at once (`take_announced`)."""
        known = self._known.get(key)
        if known is not None and known.pending_since is not None:
            self._announced.add(key)

    def take_announced(self, key: CacheKey) -> bool:
        if key in self._announced:
            self._announced.discard(key)
            return True
        return False

    def publishes(self, key: CacheKey, endpoint: McpEndpoint) -> bool:
        return endpoint.report_url is not None and key not in self._absent

    def absent(self, key: CacheKey) -> None:
        self._absent.add(key)
        self._known.pop(key, None)

    def seen(self, key: CacheKey, report: DiscoveryReport, now: float) -> float | None:
        """Note ``report``; since when it has been pending in its run (None once it is complete)."""
        known = self._known.setdefault(key, _Known())
        if known.run_id != report.run_id:
            known.run_id, known.pending_since = report.run_id, None
        if report.complete:
            known.pending_since = None
        elif known.pending_since is None:
            known.pending_since = now
        return known.pending_since

    def forget_other_agents(self, workspace_id: str, keep_agent_id: str | None) -> None:
        def gone(key: CacheKey) -> bool:
            return key.workspace_id == workspace_id and key.agent_id != keep_agent_id

        self._absent = {key for key in self._absent if not gone(key)}
        self._known = {key: known for key, known in self._known.items() if not gone(key)}
        self._announced = {key for key in self._announced if not gone(key)}
