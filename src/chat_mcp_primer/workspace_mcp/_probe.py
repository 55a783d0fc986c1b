"""The connection probe: a bare TCP knock on an endpoint that refused connections, until it accepts."""

from __future__ import annotations

from urllib.parse import urlsplit

import anyio

from chat_mcp_primer.clock import Clock, run_with_timeout, tags
from chat_mcp_primer.workspace import McpEndpoint
from chat_mcp_primer.workspace_mcp._bus import Feed, Publish, Wake, WakeKind

_DEFAULT_PORTS = {"http": 80, "https": 443}


async def accepts_connections(url: str, clock: Clock, within: float) -> bool:
    """Whether the host and port of ``url`` accept a TCP connection now (closed again at once)."""
    parts = urlsplit(url)
    host = parts.hostname
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    if host is None or port is None:
        return False

    async def knock() -> None:
        stream = await anyio.connect_tcp(host, port)
        await stream.aclose()

    try:
        await run_with_timeout(clock, within, knock, *tags.PRIMER_PROBE)
    except (OSError, TimeoutError):
        return False
    return True


def connection_probe(endpoint: McpEndpoint, clock: Clock, interval: float) -> Feed:
    """Knock on ``endpoint`` every ``interval`` (no MCP traffic) and publish once it accepts connections."""

    async def knock_until_accepted(publish: Publish) -> None:
        while True:
            await clock.sleep(interval, *tags.PRIMER_PROBE)
            if await accepts_connections(endpoint.url, clock, interval):
                publish(Wake(WakeKind.ENDPOINT_ACCEPTS, f"{endpoint.server} accepts"))
                return

    return knock_until_accepted
