from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

import anyio


@runtime_checkable
class Clock(Protocol):
    """The source of time for everything the library waits on.

    Tags name a wait (``"primer", "retry"``: every one is in `chat_mcp_primer.clock.tags`) so a test clock
    can trap it; a real clock ignores them.
    Both sleeps are cancellable and return no earlier than their deadline.
    """

    def now(self) -> float:
        """Seconds on a monotonic scale; only differences are meaningful."""
        ...

    async def sleep(self, seconds: float, *tags: str) -> None:
        """Wait ``seconds`` from now."""
        ...

    async def sleep_until(self, deadline: float, *tags: str) -> None:
        """Wait until ``now() >= deadline``; returns at once when the deadline has passed."""
        ...


class SystemClock:
    """The real clock: the operating system's monotonic time.

    Readable from any thread and any process of the machine (a fake server in another thread, a CLI in
    another process), and the same on asyncio and trio, whose loop clocks differ in their offsets.
    """

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float, *tags: str) -> None:
        await anyio.sleep(seconds)

    async def sleep_until(self, deadline: float, *tags: str) -> None:
        await anyio.sleep(max(0.0, deadline - time.monotonic()))

    def __repr__(self) -> str:
        return "SystemClock()"
