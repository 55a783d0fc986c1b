"""`serve_fake_coder`: a `FakeCoder` on a loopback port, in a thread of its own."""

from __future__ import annotations

import threading
from contextlib import ExitStack
from types import TracebackType

from chat_mcp_primer.testing._fake_coder._auth import SESSION_TOKEN_HEADER
from chat_mcp_primer.testing._fake_coder._fake import FakeCoder
from chat_mcp_primer.testing._fake_coder._subdomain import subdomain_app_name
from chat_mcp_primer.testing._loopback_hosts import loopback_hosts
from chat_mcp_primer.testing._serving import LoopbackServer


class ServedFakeCoder:
    """A `FakeCoder` served over HTTP on 127.0.0.1 while the ``with`` block runs.

    ``url`` is the deployment's base URL (no trailing slash; the API is under ``/api/v2``). With a
    ``wildcard_access_url``, its hosts resolve to the server's loopback address in this process while the
    block runs (`loopback_hosts`), so subdomain apps are reached as on a deployment with wildcard DNS.
    Leaving the block ends open watch streams, stops the workspace MCP servers and closes the port. The
    token is never part of the repr.
    """

    def __init__(self, fake: FakeCoder) -> None:
        self.fake = fake
        self._stopping = threading.Event()
        self._server = LoopbackServer(lambda: fake.asgi_app(self._stopping))
        self._running = False
        self._resolving = ExitStack()

    def __repr__(self) -> str:
        return f"ServedFakeCoder(url={self.url!r})" if self._running else "ServedFakeCoder(stopped)"

    @property
    def url(self) -> str:
        return self._server.base_url

    @property
    def token(self) -> str:
        """The admin's session token (`FakeCoder.token`)."""
        return self.fake.token

    @property
    def headers(self) -> dict[str, str]:
        """Headers that authenticate as the admin: ``{"Coder-Session-Token": token}``."""
        return {SESSION_TOKEN_HEADER: self.fake.token}

    @property
    def open_connections(self) -> int:
        """TCP connections currently open to the server."""
        return self._server.open_connections

    def app_url(
        self,
        workspace: str,
        slug: str = "mcp",
        *,
        agent: str | None = "main",
        owner: str = "alice",
        subdomain: bool = False,
    ) -> str:
        """The URL of a workspace app, with a trailing slash: at its path (``agent=None``: the workspace's
        only agent), or with ``subdomain`` at its own host under the wildcard access URL."""
        if not subdomain:
            target = workspace if agent is None else f"{workspace}.{agent}"
            return f"{self.url}/@{owner}/{target}/apps/{slug}/"
        wildcard = self.fake.wildcard_access_url
        if not wildcard or agent is None:
            raise ValueError("a subdomain app URL needs the fake's wildcard_access_url and the agent's name")
        host = wildcard.replace("*", subdomain_app_name(slug, agent, workspace, owner), 1)
        return f"http://{host}:{self._server.port}/"

    def mcp_url(
        self,
        workspace: str,
        slug: str = "mcp",
        *,
        agent: str | None = "main",
        owner: str = "alice",
        subdomain: bool = False,
    ) -> str:
        """The Streamable HTTP endpoint of a workspace MCP server behind the app proxy."""
        return self.app_url(workspace, slug, agent=agent, owner=owner, subdomain=subdomain) + "mcp"

    def start(self) -> ServedFakeCoder:
        if self.fake.wildcard_access_url:
            self._resolving.enter_context(loopback_hosts(self.fake.wildcard_access_url))
        try:
            self._server.start()
        except BaseException:
            self._resolving.close()
            raise
        self._running = True
        return self

    def stop(self) -> None:
        self._stopping.set()
        try:
            self._server.stop()
        finally:
            self._resolving.close()
            self._running = False

    def __enter__(self) -> ServedFakeCoder:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def serve_fake_coder(fake: FakeCoder) -> ServedFakeCoder:
    """Serve ``fake`` with uvicorn on a fresh loopback port: ``with serve_fake_coder(fake) as coder: ...``.

    The server runs in its own thread and event loop, so it serves tests on asyncio and trio alike, and
    reads the fake's clock only when a request arrives.
    """
    return ServedFakeCoder(fake)
