"""A wake-up for one sleeper on the injected clock, which costs no task."""

from __future__ import annotations

import anyio
import anyio.lowlevel

from chat_mcp_primer.clock import Clock


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

    def clear(self) -> None:
        self._pending = False

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
