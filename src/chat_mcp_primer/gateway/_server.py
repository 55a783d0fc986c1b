"""The gateway's HTTP face: every server's tools on one MCP endpoint, and the discovery report beside it.

``/mcp`` is the SDK's Streamable HTTP server over the `ServerTable`: ``tools/list`` answers the aggregated
listing (``server__tool`` names, as Coder's agent gives them), ``tools/call`` is routed to the server that
listed the tool. ``GET /discovery`` answers the report as JSON.

``tools/list_changed`` goes to every client whenever the aggregated listing changes, in both protocol eras
the SDK speaks: to the sessions of the handshake era (through each session's standing event stream), and
to the ``subscriptions/listen`` streams of the 2026 era (through the SDK's subscription bus).
"""

from __future__ import annotations

from collections.abc import Sequence
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
from starlette.responses import JSONResponse
from starlette.routing import Route

from chat_mcp_primer.gateway._children import error_result
from chat_mcp_primer.gateway._table import ServerTable

_log = structlog.get_logger("chat_mcp_primer.gateway")

SERVER_NAME = "chat-mcp-primer-gateway"
MCP_PATH = "/mcp"
DISCOVERY_PATH = "/discovery"
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
        """Notify after every change of the listing, until cancelled. Changes that come while a round of
        notifications is being sent are told in one more round, not one each."""
        version = self._table.listing_version
        while True:
            version = await self._table.wait_listing_changed(version)
            await self.notify()

    async def notify(self) -> None:
        await self.bus.publish(ToolsListChanged())
        for session_id, session in list(self._sessions.items()):
            try:
                await session.send_tool_list_changed()
            except Exception:  # a session that cannot be told any more is forgotten
                self._sessions.pop(session_id, None)
        _log.info("gateway.list_changed_sent", version=self._table.listing_version)

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


def build_app(server: Server[Any], table: ServerTable, allowed_hosts: Sequence[str] = ()) -> Starlette:
    """The ASGI app: ``server`` at ``/mcp`` and ``table``'s report at ``/discovery``. Its lifespan runs the SDK's
    session manager.

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

    async def discovery(request: Request) -> JSONResponse:
        return JSONResponse(table.report().to_json(), headers={"Cache-Control": "no-store"})

    return server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        transport_security=security,
        custom_starlette_routes=[Route(DISCOVERY_PATH, discovery, methods=["GET"])],
    )
