"""The MCP servers "inside" workspaces, run in-process behind the app proxy.

One real MCP server (the SDK's low-level ``Server`` over Streamable HTTP) per (agent, slug): a new agent
(every start build) gets a new server listing its own version's tools, and the old one's sessions stay
with the old agent, as a real restart would have it. A server's app is created on first use and its
lifespan runs in a task of the fake's own lifespan, which ends them all when the fake stops.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import mcp_types
from mcp.server import Server
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette

from chat_mcp_primer.testing._fake_coder._config import FakeMcpServer
from chat_mcp_primer.testing._fake_coder._state import CoderState

McpKey = tuple[str, str, str]  # (workspace id, agent id, slug)
_BEHIND_THE_PROXY = TransportSecuritySettings(enable_dns_rebinding_protection=False)


def mcp_server_app(state: CoderState, key: McpKey, config: FakeMcpServer) -> Starlette:
    """A Streamable HTTP app (MCP endpoint at ``/mcp``) serving ``config.tools``.

    Listings and calls are counted in the state under ``key``. A call answers with a text naming the tool
    and its arguments; a call of an unknown tool is an error result.
    """
    tools = [
        mcp_types.Tool(name=tool.name, description=tool.description, input_schema=tool.input_schema)
        for tool in config.tools
    ]
    names = {tool.name for tool in config.tools}

    async def list_tools(ctx: Any, params: mcp_types.PaginatedRequestParams | None) -> mcp_types.ListToolsResult:
        with state.lock:
            state.mcp_list_calls[key] += 1
        return mcp_types.ListToolsResult(tools=tools)

    async def call_tool(ctx: Any, params: mcp_types.CallToolRequestParams) -> mcp_types.CallToolResult:
        with state.lock:
            state.mcp_tool_calls[key] += 1
        arguments = dict(params.arguments or {})
        if params.name not in names:
            text = f"unknown tool {params.name!r}"
            return mcp_types.CallToolResult(content=[mcp_types.TextContent(type="text", text=text)], is_error=True)
        text = f"{params.name} called with {arguments}"
        return mcp_types.CallToolResult(content=[mcp_types.TextContent(type="text", text=text)])

    server = Server(name=config.slug, on_list_tools=list_tools, on_call_tool=call_tool)
    # A server meant to sit behind Coder's app proxy sees the host the client asked for (the deployment's
    # or the app's own subdomain), so it cannot keep the SDK's loopback-only Host check.
    return server.streamable_http_app(streamable_http_path="/mcp", transport_security=_BEHIND_THE_PROXY)


class McpHost:
    """Starts MCP server apps on demand and owns their lifespans for as long as `running` is entered."""

    def __init__(self) -> None:
        self._apps: dict[McpKey, Starlette] = {}
        self._group: anyio.abc.TaskGroup | None = None
        self._lock: anyio.Lock | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Host servers while the block runs; leaving it stops every server started meanwhile."""
        async with anyio.create_task_group() as group:
            self._group = group
            self._lock = anyio.Lock()
            try:
                yield
            finally:
                self._group = None
                group.cancel_scope.cancel()

    async def app(self, key: McpKey, build: Callable[[], Starlette]) -> Starlette:
        """The running app for ``key``, built and started (lifespan entered) on first use."""
        if self._group is None or self._lock is None:
            raise RuntimeError("MCP servers are hosted only while the fake's lifespan runs")
        async with self._lock:
            app = self._apps.get(key)
            if app is None:
                app = build()
                await self._group.start(self._serve, app)
                self._apps[key] = app
        return app

    @staticmethod
    async def _serve(app: Starlette, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with app.router.lifespan_context(app):
            task_status.started()
            await anyio.sleep_forever()
