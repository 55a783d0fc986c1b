from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from chat_mcp_primer._tasks import TaskGroup
from chat_mcp_primer.clock import tags as clock_tags
from chat_mcp_primer.clock._clock import Clock

T = TypeVar("T")


async def run_with_timeout(clock: Clock, seconds: float, call: Callable[[], Awaitable[T]], *tags: str) -> T:
    """Run ``call`` and return its result, or raise `TimeoutError` once ``seconds`` pass on ``clock``.

    The timer is a sleep on the injected clock tagged ``tags`` plus ``"timeout"``, so a test clock
    decides when it fires. ``call`` runs in the caller's task, with the timer as the only task started
    (thousands of timed calls at once should not cost twice as many tasks); its exception is re-raised
    as is (never wrapped in a group), and cancelling the caller cancels it. A call that finishes in the
    same instant the timer fires counts as finished.
    """
    outcome: list[T] = []
    # Only the timer cancels the call's scope, and only once it fired; when the call is done first, the
    # timer's own scope is cancelled instead, never one of the caller's (see `TaskGroup` for why).
    with anyio.CancelScope() as timed:
        async with TaskGroup() as timer:

            async def expire() -> None:
                await clock.sleep(seconds, *tags, clock_tags.TIMEOUT)
                timed.cancel()

            timer.start_soon(expire)
            try:
                outcome.append(await call())
            finally:
                timer.cancel()
    if outcome:
        return outcome[0]
    raise TimeoutError(f"timed out after {seconds:g} s")
