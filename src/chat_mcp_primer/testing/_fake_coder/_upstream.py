"""Forwarding a proxied request to a real server behind an app (another process), streaming both ways."""

from __future__ import annotations

import anyio
import httpx
from starlette.types import Receive, Scope, Send

# Headers that describe one hop, not the message (RFC 9110, section 7.6.1); never forwarded.
# Not forwarded. ``Host`` is, as Go's reverse proxy under Coder's app proxy passes it on: the app sees the
# host the client asked for (the access URL's, or its own subdomain under the wildcard).
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
)
# An upstream that accepts the connection is given as long as it likes: event streams stay open for the
# life of an MCP session. Connecting is bounded, so a dead upstream is a prompt 502.
_UPSTREAM_TIMEOUT = httpx.Timeout(None, connect=5.0)


class UpstreamDown(Exception):
    """Nothing listens at the upstream; nothing was sent to the client yet."""


async def forward(upstream: str, scope: Scope, receive: Receive, send: Send) -> None:
    """Send the request in ``scope`` to ``upstream`` + its path below the app, and stream the answer back.

    Raises `UpstreamDown`, before anything is sent, when nothing listens at ``upstream``.
    """
    body = bytearray()
    while True:
        message = await receive()
        body.extend(message.get("body", b""))
        if not message.get("more_body", False):
            break
    path = scope["path"][len(scope.get("root_path", "")) :]
    query = scope.get("query_string", b"").decode("latin-1")
    url = upstream.rstrip("/") + "/" + path.lstrip("/") + (f"?{query}" if query else "")
    headers = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in scope["headers"]
        if name.decode("latin-1").lower() not in _HOP_BY_HOP
    ]
    # The upstream is plain HTTP on loopback: no TLS context to build (tens of milliseconds per request).
    down: str | None = None
    async with httpx.AsyncClient(timeout=_UPSTREAM_TIMEOUT, verify=False) as client:
        request = client.build_request(scope["method"], url, headers=headers, content=bytes(body))
        async with anyio.create_task_group() as group:

            async def stop_when_the_client_leaves() -> None:
                # The client may leave before the upstream answers (it gave up waiting): the request upstream
                # is abandoned then too, as Coder's proxy does, instead of being waited on forever. Later, a
                # long-lived event stream ends when its client goes away, not when the upstream does.
                while (await receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()

            group.start_soon(stop_when_the_client_leaves)
            try:
                response = await client.send(request, stream=True)
            except httpx.TransportError as exc:
                down = type(exc).__name__
                group.cancel_scope.cancel()
            else:
                try:
                    await _relay(response, send)
                finally:
                    await response.aclose()
                group.cancel_scope.cancel()
    if down is not None:
        raise UpstreamDown(down)


async def _relay(response: httpx.Response, send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": response.status_code,
            "headers": [
                (name.encode("latin-1"), value.encode("latin-1"))
                for name, value in response.headers.multi_items()
                if name.lower() not in _HOP_BY_HOP
            ],
        }
    )
    async for chunk in response.aiter_raw():
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
