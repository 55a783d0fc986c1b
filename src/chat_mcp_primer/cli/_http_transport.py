"""``serve-mcp``'s HTTP transport: the address it listens on, the socket it binds, the bearer token it checks."""

from __future__ import annotations

import errno
import hmac
import ipaddress
import socket
from dataclasses import dataclass

import structlog
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

_log = structlog.get_logger("chat_mcp_primer.serve_mcp")

# The SDK's default mount point, so clients can use the URL they would guess.
MCP_PATH = "/mcp"
# Port 0 would ask the OS for a random port nobody could learn; 65535 is the largest TCP port.
MIN_PORT = 1
MAX_PORT = 65535
HTTP_UNAUTHORIZED = 401
# RFC 6455's close code for a peer that broke the server's policy (here: no valid bearer token).
WEBSOCKET_POLICY_VIOLATION = 1008
# uvicorn's own listen backlog: connections that may queue while the server is busy accepting.
LISTEN_BACKLOG = 2048


class BearerTokenMiddleware:
    """Lets requests through only with ``Authorization: Bearer <token>``: other HTTP requests get 401, other
    WebSocket handshakes are refused. The comparison takes constant time; lifespan events pass through.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self._app = app
        self._expected = token.encode()

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                scheme, _, credentials = bytes(value).partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), self._expected)
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" or self._authorized(scope):
            await self._app(scope, receive, send)
            return
        _log.info("serve_mcp.unauthorized", path=scope.get("path"))
        if scope["type"] == "websocket":
            # Closing before accepting makes the server answer the handshake with 403.
            await send({"type": "websocket.close", "code": WEBSOCKET_POLICY_VIOLATION})
            return
        response = JSONResponse(
            {"error": "unauthorized", "message": "send Authorization: Bearer <token>"},
            status_code=HTTP_UNAUTHORIZED,
            headers={"WWW-Authenticate": "Bearer"},
        )
        await response(scope, receive, send)


# -- the command ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HttpEndpoint:
    """Where ``--http`` serves: a host (name or address) and a TCP port."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str, option: str = "--http") -> HttpEndpoint:
        """``HOST:PORT`` (IPv6 hosts in brackets: ``[::1]:8000``); `ValueError` with a clear message naming
        ``option``, the command line option it came from."""
        host, separator, port_text = text.strip().rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not separator or not host or not port_text.isdigit():
            raise ValueError(f"{option} expects HOST:PORT (for example 127.0.0.1:8000), got {text!r}")
        port = int(port_text)
        if not MIN_PORT <= port <= MAX_PORT:
            raise ValueError(f"{option} port must be between {MIN_PORT} and {MAX_PORT}, got {port}")
        return cls(host, port)

    @property
    def is_loopback(self) -> bool:
        """Whether only this machine can reach the address (``localhost``, 127.0.0.0/8, ``::1``)."""
        if self.host.casefold() == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{MCP_PATH}"


class StartupError(Exception):
    """The server cannot start (its port is taken, the deployment or the token is wrong); the text says why."""


def listen(endpoint: HttpEndpoint) -> socket.socket:
    """A socket bound and listening on ``endpoint``, as uvicorn would open it, or `StartupError` saying why
    not ("address already in use"), so the failure is reported before the server says it is serving."""
    family = socket.AF_INET6 if ":" in endpoint.host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio turns Nagle's algorithm off only on connections accepted from a socket
    # created with it, and uvicorn writes a response's head and body apart, so each answer would otherwise
    # wait out the client's delayed ACK (about 40 ms on Linux).
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart may reuse the port at once
        listener.bind((endpoint.host, endpoint.port))
        listener.listen(LISTEN_BACKLOG)
    except OSError as exc:
        listener.close()
        reason = exc.strerror or errno.errorcode.get(exc.errno or 0) or type(exc).__name__
        if isinstance(exc, socket.gaierror):
            reason = "host not found"
        where = endpoint.url.removesuffix(MCP_PATH).removeprefix("http://")
        raise StartupError(f"cannot listen on {where}: {reason[:1].lower()}{reason[1:]}") from None
    return listener
