from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

import uvicorn

# Generous: a loaded CI machine can take a while to import and start an app in a fresh thread.
_STARTUP_TIMEOUT_S = 30.0
_STARTUP_POLL_S = 0.005


def free_port() -> int:
    """A loopback port nothing listens on yet: connections to it are refused until a server starts there
    (e.g. ``WorkspaceMCPServer(port=...)``). Another process could take it meanwhile; tests accept that."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class LoopbackServer:
    """Serves an ASGI app with uvicorn on a fresh 127.0.0.1 port, in a thread of its own.

    ``app_factory`` is called in that thread, so the app's synchronisation primitives belong to the
    server's own asyncio loop. Thus the app serves tests on either anyio backend, and a test's fake clock
    can be read by the app without any background task. Use as a (sync) context manager.

    ``tls_files`` (a PEM certificate file and its key file) serves HTTPS instead of HTTP.
    """

    def __init__(
        self,
        app_factory: Callable[[], Any],
        *,
        port: int = 0,
        graceful_shutdown_s: int = 1,
        tls_files: tuple[str, str] | None = None,
    ) -> None:
        # IPPROTO_TCP explicitly: asyncio turns Nagle's algorithm off only on sockets created with it, and
        # uvicorn writes a response's head and body separately, so with Nagle on every response would wait
        # out the client's delayed ACK (about 40 ms on Linux).
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socket.bind(("127.0.0.1", port))
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(
            app_factory,
            factory=True,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=graceful_shutdown_s,
            ssl_certfile=tls_files[0] if tls_files else None,
            ssl_keyfile=tls_files[1] if tls_files else None,
        )
        self._scheme = "https" if tls_files else "http"
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"loopback-server-{self.port}", daemon=True)
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def base_url(self) -> str:
        return f"{self._scheme}://127.0.0.1:{self.port}"

    @property
    def open_connections(self) -> int:
        """TCP connections currently open to this server."""
        return len(self._server.server_state.connections)

    def _run(self) -> None:
        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            await self._server.serve(sockets=[self._socket])

        try:
            asyncio.run(serve())
        except BaseException as exc:  # reported by start()/stop() in the test's thread
            self._failure = exc

    def start(self) -> LoopbackServer:
        self._thread.start()
        waited = threading.Event()
        elapsed = 0.0
        while not self._server.started:
            if self._failure is not None or not self._thread.is_alive():
                raise RuntimeError(f"server on port {self.port} failed to start") from self._failure
            if elapsed > _STARTUP_TIMEOUT_S:
                raise RuntimeError(f"server on port {self.port} did not start in {_STARTUP_TIMEOUT_S} s")
            waited.wait(_STARTUP_POLL_S)
            elapsed += _STARTUP_POLL_S
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=_STARTUP_TIMEOUT_S)
        self._socket.close()

    def kill(self) -> None:
        """Stop at once, as a killed process would: every open connection is reset (TCP RST, no answer to
        requests in flight), then the port closes and further connections are refused."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            reset = threading.Event()

            def reset_connections() -> None:
                # Stop listening in the same instant, as a dead process does: a client that sees its
                # connection reset and dials again is refused, never served by a half-dead server.
                for listener in self._server.servers:
                    listener.close()
                for connection in list(self._server.server_state.connections):
                    transport = getattr(connection, "transport", None)
                    sock = transport.get_extra_info("socket") if transport is not None else None
                    if sock is not None:
                        # Linger on with a zero timeout: closing sends RST instead of FIN.
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    if transport is not None:
                        transport.abort()
                reset.set()

            try:
                loop.call_soon_threadsafe(reset_connections)
            except RuntimeError:  # the loop closed meanwhile: nothing left to reset
                reset.set()
            reset.wait(_STARTUP_TIMEOUT_S)
        self._server.force_exit = True
        self.stop()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
