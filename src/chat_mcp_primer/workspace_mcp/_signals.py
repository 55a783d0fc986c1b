"""What tells a primer that a retry may now succeed, so it need not wait out its pause."""

from __future__ import annotations

from urllib.parse import urlsplit

import anyio

from chat_mcp_primer.clock import Clock, run_with_timeout

PREPARE_WAIT_TAGS = ("prepare", "wait")
PREPARE_POLL_TAGS = ("prepare", "poll")
PROBE_TAGS = ("primer", "probe")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class Signal:
    """A level-triggered wake-up: `set` may come before or during `wait`; each `wait` consumes it."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()
        self._event = anyio.Event()


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
        await run_with_timeout(clock, within, knock, *PROBE_TAGS)
    except (OSError, TimeoutError):
        return False
    return True
