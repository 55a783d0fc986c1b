"""The gateway's HTTP face: every server's tools on one MCP endpoint, and the discovery report beside it.

``/mcp`` is the SDK's Streamable HTTP server over the `ServerTable`: ``tools/list`` answers the aggregated
listing (``server__tool`` names, as Coder's agent gives them), ``tools/call`` is routed to the server that
listed the tool. ``GET /discovery`` answers the report as JSON.

``tools/list_changed`` goes to every client whenever the report changes (the listing with it, or a server
was tried: a client waiting for the report to complete hears it too), in both protocol eras
the SDK speaks: to the sessions of the handshake era (through each session's standing event stream), and
to the ``subscriptions/listen`` streams of the 2026 era (through the SDK's subscription bus).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import mcp_types
import structlog
from mcp.server import Server
from mcp.server.context import ServerRequestContext
from mcp.server.session import ServerSession
from mcp.server.streamable_http_manager import DEFAULT_MAX_SESSIONS
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ToolsListChanged
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chat_mcp_primer.clock import Clock, run_with_timeout
from chat_mcp_primer.clock import tags as clock_tags
from chat_mcp_primer.gateway._children import error_result
from chat_mcp_primer.gateway._report import DiscoveryReport
from chat_mcp_primer.gateway._settings import GatewaySettings
from chat_mcp_primer.gateway._table import ServerTable

_log = structlog.get_logger("chat_mcp_primer.gateway")

SERVER_NAME = "chat-mcp-primer-gateway"
MCP_PATH = "/mcp"
DISCOVERY_PATH = "/discovery"
# `Prefer: wait=N` (RFC 7240): how long a client lets a conditional read of the report be held.
_PREFER_WAIT = re.compile(r"\bwait=(\d+)")
# Hex digits of SHA-256 in the report's ETag: 64 bits tell two reports apart beyond doubt.
_ETAG_HEX_DIGITS = 16
# The header a handshake-era Streamable HTTP client names its session by.
_SESSION_HEADER = "mcp-session-id"
SERVER_INSTRUCTIONS = (
    "The MCP servers of this workspace's .mcp.json, on one endpoint: each tool is named server__tool. "
    "GET /discovery says which servers are up, which have no tools and which failed, and why."
)


class ListingNotifier:
    """Tells every connected client that the listing changed, in whichever era it speaks."""

    def __init__(self, table: ServerTable) -> None:
        self._table = table
        self.bus = InMemorySubscriptionBus()
        self.listen = ListenHandler(self.bus)
        # Handshake-era sessions to tell, by session id, each through the latest request's session object (its
        # notifications without a related request go to the session's standing event stream). As many as the
        # SDK serves at once, the oldest forgotten first: telling a session that has ended is a silent no-op.
        self._sessions: dict[str, ServerSession] = {}

    def remember(self, context: ServerRequestContext[Any]) -> None:
        if context.protocol_version in MODERN_PROTOCOL_VERSIONS or not isinstance(context.request, Request):
            return  # the 2026 era is told through subscriptions; stdio is not served
        session_id = context.request.headers.get(_SESSION_HEADER)
        if session_id is None:
            return  # the handshake itself: the session's next request carries its id
        self._sessions.pop(session_id, None)
        self._sessions[session_id] = context.session
        while len(self._sessions) > DEFAULT_MAX_SESSIONS:
            del self._sessions[next(iter(self._sessions))]

    async def run(self) -> None:
        """Notify after every change of the report, until cancelled: a server tried, up, down or changed.
        The listing changes only with some of them, but a client waiting for the report to complete (the
        runtime, while it is pending) hears each step this way, with no need to poll ``/discovery``; one
        that lists again finds the same tools at worst. Changes that come while a round of notifications
        is being sent are told in one more round, not one each."""
        version = self._table.report_version
        while True:
            version = await self._table.wait_report_version(version)
            await self.notify()

    async def notify(self) -> None:
        await self.bus.publish(ToolsListChanged())
        for session_id, session in list(self._sessions.items()):
            try:
                await session.send_tool_list_changed()
            except Exception:  # a session that cannot be told any more is forgotten
                self._sessions.pop(session_id, None)
        _log.info("gateway.list_changed_sent", version=self._table.report_version)

    def close(self) -> None:
        """End every subscription stream gracefully (on shutdown)."""
        self.listen.close()


def build_mcp_server(table: ServerTable, notifier: ListingNotifier) -> Server[Any]:
    """The aggregated MCP server over ``table``."""

    async def list_tools(
        context: ServerRequestContext[Any], params: mcp_types.PaginatedRequestParams | None
    ) -> mcp_types.ListToolsResult:
        notifier.remember(context)
        return mcp_types.ListToolsResult(tools=list(table.listing))

    async def call_tool(
        context: ServerRequestContext[Any], params: mcp_types.CallToolRequestParams
    ) -> mcp_types.CallToolResult:
        notifier.remember(context)
        route = table.route(params.name)
        if route is None:
            return error_result(f"no tool named {params.name!r} in this workspace (list the tools again)")
        return await route.caller.call(route.tool, dict(params.arguments or {}))

    async def initialized(context: ServerRequestContext[Any], params: mcp_types.NotificationParams) -> None:
        notifier.remember(context)

    server: Server[Any] = Server(
        SERVER_NAME,
        instructions=SERVER_INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_subscriptions_listen=notifier.listen,
    )
    server.add_notification_handler("notifications/initialized", mcp_types.NotificationParams, initialized)
    return server


@dataclass(frozen=True, slots=True)
class ReportWaits:
    """How a read of ``/discovery`` may be held for a change: on which clock, and for how long at most."""

    clock: Clock
    settings: GatewaySettings


def report_etag(report: DiscoveryReport) -> str:
    """The report's entity tag: a digest of its JSON, the same for the same report."""
    digest = hashlib.sha256(json.dumps(report.to_json(), sort_keys=True).encode()).hexdigest()
    return f'"{digest[:_ETAG_HEX_DIGITS]}"'


def build_app(
    server: Server[Any], table: ServerTable, allowed_hosts: Sequence[str] = (), waits: ReportWaits | None = None
) -> Starlette:
    """The ASGI app: ``server`` at ``/mcp`` and ``table``'s report at ``/discovery``. Its lifespan runs the SDK's
    session manager.

    The report carries an ``ETag``. A read with ``If-None-Match`` naming the current report is answered 304;
    with ``Prefer: wait=N`` as well (RFC 7240), it is first held until the report changes, for N seconds at
    most (and ``waits.settings.max_report_wait_seconds``): a client waits on a pending report in one request
    and hears its change at once, without polling.

    ``allowed_hosts`` turns on the SDK's DNS-rebinding protection for those ``Host`` values (``host:port``,
    ``*`` for any port). Off by default: Coder's app proxy forwards the deployment's own host name (a
    subdomain app's, or the access URL's), which the workspace cannot know in advance, and the gateway listens
    on loopback only.
    """
    security = (
        TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=list(allowed_hosts))
        if allowed_hosts
        else TransportSecuritySettings(enable_dns_rebinding_protection=False)
    )

    async def discovery(request: Request) -> Response:
        seen = request.headers.get("if-none-match")
        version = table.report_version
        if seen == report_etag(table.report()) and waits is not None:
            wanted = _PREFER_WAIT.search(request.headers.get("prefer", ""))
            hold = min(float(wanted.group(1)), waits.settings.max_report_wait_seconds) if wanted else 0.0
            if hold > 0:
                with contextlib.suppress(TimeoutError):
                    await run_with_timeout(
                        waits.clock, hold, partial(table.wait_report_version, version), *clock_tags.GATEWAY_REPORT_WAIT
                    )
        report = table.report()
        etag = report_etag(report)
        headers = {"Cache-Control": "no-store", "ETag": etag}
        if seen == etag:
            return Response(status_code=304, headers=headers)
        return JSONResponse(report.to_json(), headers=headers)

    return server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        transport_security=security,
        custom_starlette_routes=[Route(DISCOVERY_PATH, discovery, methods=["GET"])],
    )
