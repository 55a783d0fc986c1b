"""What tells a primer that a retry may now succeed, so it need not wait out its pause."""

from __future__ import annotations

from urllib.parse import urlsplit

import anyio
import anyio.lowlevel

from chat_mcp_primer.clock import Clock, run_with_timeout

PREPARE_WAIT_TAGS = ("prepare", "wait")
PREPARE_POLL_TAGS = ("prepare", "poll")
PROBE_TAGS = ("primer", "probe")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class Signal:
    """A level-triggered wake-up for one sleeper: `set` during a `sleep` ends it early, `set` before one
    makes it return at once. Each early return consumes the signal.

    The sleeper's cancel scope is cancelled directly, so an interruptible sleep costs no extra task: it
    matters when a thousand primers pause at once.
    """

    __slots__ = ("_pending", "_sleeper")

    def __init__(self) -> None:
        self._pending = False
        self._sleeper: anyio.CancelScope | None = None

    def set(self) -> None:
        sleeper, self._sleeper = self._sleeper, None
        if sleeper is None:
            self._pending = True
        else:
            sleeper.cancel()

    async def sleep(self, clock: Clock, seconds: float, *tags: str) -> bool:
        """Sleep ``seconds`` on ``clock`` (tagged ``tags``), less if the signal is set; True when woken early."""
        if self._pending:
            self._pending = False
            await anyio.lowlevel.checkpoint()
            return True
        with anyio.CancelScope() as scope:
            self._sleeper = scope
            try:
                await clock.sleep(seconds, *tags)
            finally:
                if self._sleeper is scope:
                    self._sleeper = None
        return scope.cancelled_caught


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
