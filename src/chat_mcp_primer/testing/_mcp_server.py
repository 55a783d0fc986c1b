from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import anyio
import mcp_types
from mcp.server import Server
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from chat_mcp_primer.clock import Clock
from chat_mcp_primer.testing._floods import Flood, Flooding
from chat_mcp_primer.testing._report_route import REPORT_PATH, ReportRoute
from chat_mcp_primer.testing._serving import LoopbackServer
from chat_mcp_primer.workspace import McpEndpoint

# How long `wait_until_idle` gives the server thread to notice closed sockets: 5 s in 10 ms polls,
# far more than loopback needs even on a loaded machine.
_IDLE_POLLS = 500
_IDLE_POLL_S = 0.01
# The hosts the SDK answers by default on loopback, kept when `WorkspaceMCPServer.allowed_hosts` adds more.
_LOOPBACK_HOSTS = ("127.0.0.1:*", "localhost:*", "[::1]:*")


@dataclass(frozen=True, slots=True)
class ToolDef:
    """A tool a `WorkspaceMCPServer` lists. ``input_schema`` is sent as is, even when invalid."""

    name: str
    description: str = ""
    input_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(frozen=True, slots=True)
class SeenRequest:
    """One HTTP request as a `WorkspaceMCPServer` received it: everything a server in a workspace could
    read or keep, credentials included (the ``Cookie`` header is among ``headers``)."""

    method: str
    path: str
    query_string: str
    headers: tuple[tuple[str, str], ...]

    def texts(self) -> tuple[str, ...]:
        """Every string of the request a secret could hide in: path, query string, header names and values."""
        return (self.path, self.query_string, *(part for header in self.headers for part in header))


class _RequestRecorder:
    """ASGI middleware that notes every HTTP request before passing it on (lifespan events pass as they are)."""

    def __init__(self, app: ASGIApp, seen: list[SeenRequest], lock: threading.Lock) -> None:
        self._app = app
        self._seen = seen
        self._lock = lock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = SeenRequest(
                method=scope["method"],
                path=scope["path"],
                query_string=scope.get("query_string", b"").decode("latin-1"),
                headers=tuple((name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]),
            )
            with self._lock:
                self._seen.append(request)
        await self._app(scope, receive, send)


def echo_tools(*names: str) -> list[ToolDef]:
    return [ToolDef(name=name, description=f"The {name} tool.") for name in names]


class WorkspaceMCPServer:
    """A scriptable MCP server over real Streamable HTTP on loopback, standing in for a workspace server.

    Its behaviour is a pure function of a clock's ``now()`` read when a request arrives, so a fake
    clock drives it exactly with no background task:

    - ``ready_at``: until then it lists no tools (a server whose backends are still connecting);
    - ``page_size``: paginate listings; ``cursor_loop``: hand back the same cursor forever;
    - ``hang_listing``: never answer ``tools/list``; ``fail_listing``: answer it with an error;
    - ``flood``: answer ``tools/list`` with a `Flood` (a huge body, millions of tools, an endless stream).

    ``port`` picks the loopback port (default: any free one), e.g. to start the server where a client
    has already been refused. ``tls_files`` (a PEM certificate file and its key file) serves HTTPS.
    ``middleware`` wraps the MCP app, for faults a real server cannot be asked to make (HTTP errors,
    malformed bodies, answers held back); it must pass lifespan events through, as the app's lifespan
    runs the MCP session manager. `kill` stops it like a killed process.

    Like any server built on the SDK, it answers only requests whose ``Host`` is a loopback name (421
    otherwise: DNS-rebinding protection). Behind Coder's app proxy it sees the host the client asked for,
    so ``allowed_hosts`` (``"mcp--main--dev--alice.apps.coder.test:*"``) adds hosts it also answers, as a
    template author configures a server that sits behind a deployment.

    ``report`` (a dict in the workspace gateway's format, settable at any time) is served as a discovery
    report at ``/discovery``, with an ETag and long polls (`ReportRoute`; ``report_waits=False``: answered
    at once, as by a server without long polls), and named by `endpoint`.

    Calling a tool answers with a text naming the tool and its arguments. Counters (``list_calls``,
    ``call_calls``, `floods_sent`, `flooding`, `open_connections`, `open_sessions`) let tests assert what
    the client did; `seen` holds every HTTP request as it arrived (headers, cookies, query string), so a
    test can prove what a proxy in front of the server let through.
    """

    def __init__(
        self,
        tools: Sequence[ToolDef],
        *,
        name: str = "workspace",
        clock: Clock | None = None,
        ready_at: float | None = None,
        page_size: int | None = None,
        cursor_loop: bool = False,
        hang_listing: bool = False,
        fail_listing: bool = False,
        on_call: Callable[[str, dict[str, Any]], mcp_types.CallToolResult] | None = None,
        port: int = 0,
        tls_files: tuple[str, str] | None = None,
        middleware: Callable[[ASGIApp], ASGIApp] | None = None,
        flood: Flood | None = None,
        allowed_hosts: Sequence[str] = (),
        report: Mapping[str, Any] | None = None,
        report_waits: bool = True,
    ) -> None:
        self.tools = list(tools)
        self.name = name
        self.clock = clock
        self.ready_at = ready_at
        self.page_size = page_size
        self.cursor_loop = cursor_loop
        self.hang_listing = hang_listing
        self.fail_listing = fail_listing
        self.on_call = on_call
        self.port = port
        self.tls_files = tls_files
        self.middleware = middleware
        self.flood = flood
        self.allowed_hosts = tuple(allowed_hosts)
        # The discovery report served at /discovery (the gateway's format); set it any time, None: none.
        self.report: Mapping[str, Any] | None = report
        self.report_waits = report_waits
        self._flooding: Flooding | None = None
        self.list_calls = 0
        self.call_calls = 0
        self._lock = threading.Lock()
        self._seen: list[SeenRequest] = []
        self._serving: LoopbackServer | None = None
        self._server: Server[Any] | None = None

    # -- behaviour ---------------------------------------------------------------------------------

    def _ready(self) -> bool:
        if self.ready_at is None:
            return True
        now = self.clock.now() if self.clock is not None else 0.0
        return now >= self.ready_at

    @staticmethod
    def _listed(tools: Sequence[ToolDef]) -> list[mcp_types.Tool]:
        return [
            mcp_types.Tool(name=tool.name, description=tool.description, input_schema=tool.input_schema)
            for tool in tools
        ]

    async def _list_tools(self, ctx: Any, params: mcp_types.PaginatedRequestParams | None) -> mcp_types.ListToolsResult:
        with self._lock:
            self.list_calls += 1
        if self.hang_listing:
            await anyio.sleep_forever()
        if self.fail_listing:
            raise RuntimeError("listing failed on purpose")
        if not self._ready():
            return mcp_types.ListToolsResult(tools=[])
        tools = self.tools
        if self.cursor_loop:
            return mcp_types.ListToolsResult(tools=self._listed(tools[:1]), next_cursor="again")
        if self.page_size is None:
            return mcp_types.ListToolsResult(tools=self._listed(tools))
        start = int(params.cursor) if params is not None and params.cursor else 0
        end = start + self.page_size
        page = self._listed(tools[start:end])
        return mcp_types.ListToolsResult(tools=page, next_cursor=str(end) if end < len(tools) else None)

    async def _call_tool(self, ctx: Any, params: mcp_types.CallToolRequestParams) -> mcp_types.CallToolResult:
        with self._lock:
            self.call_calls += 1
        arguments = dict(params.arguments or {})
        if self.on_call is not None:
            return self.on_call(params.name, arguments)
        return mcp_types.CallToolResult(
            content=[mcp_types.TextContent(type="text", text=f"{params.name} called with {arguments}")]
        )

    # -- serving -----------------------------------------------------------------------------------

    def _app(self) -> Any:
        server = Server(name=self.name, on_list_tools=self._list_tools, on_call_tool=self._call_tool)
        security = None
        if self.allowed_hosts:
            security = TransportSecuritySettings(allowed_hosts=[*_LOOPBACK_HOSTS, *self.allowed_hosts])
        streamable = server.streamable_http_app(streamable_http_path="/mcp", transport_security=security)
        app = self._flooding = Flooding(streamable, lambda: self.flood)
        self._server = server
        served = app if self.middleware is None else self.middleware(app)
        reported = ReportRoute(served, lambda: self.report, waits=self.report_waits)
        return _RequestRecorder(reported, self._seen, self._lock)

    @property
    def seen(self) -> list[SeenRequest]:
        """Every HTTP request the server received so far, in order of arrival (a copy)."""
        with self._lock:
            return list(self._seen)

    @property
    def floods_sent(self) -> int:
        """Listings answered with the `flood` so far."""
        return self._flooding.sent if self._flooding is not None else 0

    @property
    def flooding(self) -> int:
        """Floods being sent right now (a stream that never ends is sent until the client leaves)."""
        return self._flooding.in_progress if self._flooding is not None else 0

    @property
    def url(self) -> str:
        if self._serving is None:
            raise RuntimeError("the server is not running")
        return f"{self._serving.base_url}/mcp"

    @property
    def open_connections(self) -> int:
        return self._serving.open_connections if self._serving is not None else 0

    @property
    def open_sessions(self) -> int:
        """MCP sessions the server holds (older protocol era; 2026-era requests carry no session)."""
        server = self._server
        if server is None or self._serving is None:
            return 0
        return len(getattr(server.session_manager, "_server_instances", ()))

    async def wait_until_idle(self) -> None:
        """Wait until no connection and no MCP session is open to this server.

        The server notices a closed socket in its own thread a moment after the client closed it, so
        this polls (in real time, bounded) instead of asserting at once.
        """
        for _ in range(_IDLE_POLLS):
            if self.open_connections == 0 and self.open_sessions == 0:
                return
            await anyio.sleep(_IDLE_POLL_S)
        raise AssertionError(
            f"{self.open_connections} connection(s) and {self.open_sessions} session(s) still open to {self.name!r}"
        )

    def endpoint(self, server: str | None = None) -> McpEndpoint:
        """How a workspace would expose this server: an endpoint named ``server`` (default its name), with
        its discovery report's URL when it publishes one (`report`)."""
        report_url = self.url.removesuffix("/mcp") + REPORT_PATH if self.report is not None else None
        return McpEndpoint(server=server or self.name, url=self.url, report_url=report_url)

    def start(self) -> WorkspaceMCPServer:
        self._serving = LoopbackServer(self._app, port=self.port, tls_files=self.tls_files).start()
        return self

    def kill(self) -> None:
        """Stop at once, like a killed process: open connections are reset, requests in flight never
        answered, and the port refuses connections from now on."""
        if self._serving is not None:
            self._serving.kill()
            self._serving = None

    def stop(self) -> None:
        if self._serving is not None:
            with contextlib.suppress(RuntimeError):
                self._serving.stop()
            self._serving = None

    def __enter__(self) -> WorkspaceMCPServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
