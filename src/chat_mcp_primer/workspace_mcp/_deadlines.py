"""Deadlines on the injected clock for many waiters at once, kept by a single task."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from chat_mcp_primer._tasks import BackgroundTasks
from chat_mcp_primer.clock import Clock
from chat_mcp_primer.workspace_mcp._signal import Signal


@dataclass(order=True, slots=True)
class Deadline:
    """Something to do at ``at`` (quick, never awaiting), unless `clear` is called first."""

    at: float
    order: int
    action: Callable[[], None] = field(compare=False)
    active: bool = field(default=True, compare=False)

    def clear(self) -> None:
        self.active = False


class Deadlines:
    """Runs each registered action once its deadline passes on ``clock``, with one task for all of them.

    A thousand chats holding a step each would otherwise need a thousand timer tasks, and every one of
    them is work to start and, when the runtime closes, to cancel. A cleared deadline stays queued until
    it comes up and is then skipped: clearing costs nothing, and the task only wakes when a deadline is
    due. The task runs among ``tasks``, the owner's background tasks, and ends with them.
    """

    def __init__(self, clock: Clock, tasks: BackgroundTasks, *tags: str) -> None:
        self._clock = clock
        self._tasks = tasks
        self._tags = tags
        self._queue: list[Deadline] = []
        self._order = itertools.count()
        self._running = False
        self._idle: anyio.Event | None = None  # set when a deadline arrives while none is queued
        self._earlier = Signal()  # ends the nap when a deadline earlier than the queued ones arrives

    def call_at(self, at: float, action: Callable[[], None]) -> Deadline:
        """Call ``action`` once ``clock.now() >= at``; `Deadline.clear` withdraws it."""
        deadline = Deadline(at, next(self._order), action)
        earliest = not self._queue or at < self._queue[0].at
        heapq.heappush(self._queue, deadline)
        if not self._running:
            self._running = True
            self._tasks.start_soon(self._keep)
        elif self._idle is not None:
            self._idle.set()
        elif earliest:
            self._earlier.set()
        return deadline

    async def _keep(self) -> None:
        while True:
            now = self._clock.now()
            while self._queue and (self._queue[0].at <= now or not self._queue[0].active):
                due = heapq.heappop(self._queue)
                if due.active:
                    due.action()
            if not self._queue:
                self._idle = anyio.Event()
                await self._idle.wait()
                self._idle = None
                continue
            await self._earlier.sleep(self._clock, self._queue[0].at - now, *self._tags)
