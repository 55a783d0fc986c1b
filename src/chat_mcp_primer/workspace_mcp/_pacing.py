"""Admission to the event loop, a few chats per pass, when many wake at once."""

from __future__ import annotations

from collections import deque

import anyio
import anyio.lowlevel

from chat_mcp_primer._tasks import BackgroundTasks


class Pacer:
    """Lets at most ``per_pass`` tasks through `admit` in each pass of the event loop; the others queue,
    first come first served, and go through in later passes.

    A thousand chats woken by the same thing (their servers listed, their primers started together, a
    barrier in the application) would otherwise all run their next piece of work in one pass, and the loop would
    answer nothing else for as long as that takes: ~50 µs each is 50 ms. Admitted a few dozen per pass,
    the same work is spread over as many passes as it needs, and every other task of the process gets its
    turn between them. Admission costs nothing while fewer than ``per_pass`` tasks ask in a pass.

    Passes are counted by one task among ``tasks`` (the owner's background tasks), and only while someone
    is queued or was admitted: an idle pacer costs no wake-ups.
    """

    def __init__(self, per_pass: int, tasks: BackgroundTasks) -> None:
        if per_pass < 1:
            raise ValueError("a pacer must admit at least one task per pass")
        self._per_pass = per_pass
        self._tasks = tasks
        self._admitted = 0  # in the current pass
        # Waiting their turn, in order. An event already set belongs to a waiter that gave up (cancelled).
        self._queue: deque[anyio.Event] = deque()
        self._counting = False  # the pass counter runs
        self._idle: anyio.Event | None = None  # the pass counter waits here until someone asks again
        self.queued_total = 0  # tasks that had to wait for a later pass, since the pacer was made

    async def admit(self) -> None:
        """Return at once if this pass still has room, else in a later pass, in the order of asking."""
        if self._admitted < self._per_pass and not self._queue:
            self._admitted += 1
            self._count_passes()
            return
        turn = anyio.Event()
        self._queue.append(turn)
        self.queued_total += 1
        self._count_passes()
        try:
            await turn.wait()
        finally:
            # Cancelled while queued: setting the event tells the counter this place is free (no O(n) remove).
            turn.set()

    def _count_passes(self) -> None:
        if not self._counting:
            self._counting = True
            self._tasks.start_soon(self._passes)
        elif self._idle is not None:
            self._idle.set()

    async def _passes(self) -> None:
        while True:
            await anyio.lowlevel.checkpoint()  # one pass of the event loop: the admitted ran in it
            self._admitted = 0
            while self._queue and self._admitted < self._per_pass:
                turn = self._queue.popleft()
                if not turn.is_set():
                    turn.set()
                    self._admitted += 1
            if not self._admitted and not self._queue:
                self._idle = anyio.Event()
                await self._idle.wait()
                self._idle = None
