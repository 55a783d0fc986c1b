from __future__ import annotations

from collections import Counter

import anyio

from chat_mcp_primer._tasks import TaskGroup
from chat_mcp_primer.clock import Clock, SystemClock
from chat_mcp_primer.clock import tags as clock_tags
from chat_mcp_primer.events import Event

# An hour of the recorder's clock: longer than any wait the library makes by default (a build and the
# startup scripts, 600 s each, plus the agent's 120 s and the primer's 30 s, all fit several times over),
# so a turn that waits out every budget still records its events; under a `MockClock`'s autojump the hour
# passes at once, so a wait for an event that never comes fails in milliseconds.
DEFAULT_EVENT_WAIT_S = 3600.0
# How many distinct event names a failure lists: enough to see what happened instead, short enough to read.
_NAMES_SHOWN = 12


class EventNotRecordedError(AssertionError):
    """`EventRecorder.wait_for` gave up: the event had not been recorded within the time it was given."""


class EventRecorder:
    """An ``on_event`` handler that keeps every event, for assertions on the event vocabulary.

    ``clock`` is the clock `wait_for` measures its ``within`` on: give it the test's `MockClock`, so that
    under ``clock.autojump()`` a wait for an event that never comes fails at once instead of hanging
    (default: the real clock).
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self.events: list[Event] = []
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._recorded: anyio.Event | None = None

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        if self._recorded is not None:
            self._recorded.set()
            self._recorded = None

    async def wait_for(self, name: str, count: int = 1, *, within: float | None = DEFAULT_EVENT_WAIT_S) -> Event:
        """The ``count``-th event called ``name`` (``count=2``: the second), waiting for it if need be.

        Returns at once when it was already recorded. Otherwise it wakes when an event is recorded (no
        polling), and raises `EventNotRecordedError`, naming what was recorded instead, once ``within``
        seconds pass on the recorder's clock without it; ``within=None`` waits until cancelled. The
        deadline is a sleep tagged `tags.EVENT_RECORDER_WAIT`, which an autojumping `MockClock` reaches like any
        other, after every earlier deadline: a wait for an event that never comes fails in milliseconds
        instead of hanging. Cancelling the caller cancels the wait and its deadline.
        """
        if count < 1:
            raise ValueError(f"count counts events from 1, not {count}")
        if within is None:
            return await self._recorded_nth(name, count)
        if (found := self._nth(name, count)) is not None:
            return found
        # Only the timer cancels the wait's scope; when the event comes first, the timer is cancelled
        # instead (`run_with_timeout` does the same, with a tag autojump would never jump to).
        with anyio.CancelScope() as waiting:
            async with TaskGroup() as timer:

                async def expire() -> None:
                    await self._clock.sleep(within, clock_tags.EVENT_RECORDER_WAIT)
                    waiting.cancel()

                timer.start_soon(expire)
                try:
                    return await self._recorded_nth(name, count)
                finally:
                    timer.cancel()
        raise EventNotRecordedError(self._not_recorded(name, count, within))

    def named(self, name: str) -> list[Event]:
        return [event for event in self.events if event.name == name]

    @property
    def names(self) -> list[str]:
        return [event.name for event in self.events]

    def _nth(self, name: str, count: int) -> Event | None:
        found = self.named(name)
        return found[count - 1] if len(found) >= count else None

    async def _recorded_nth(self, name: str, count: int) -> Event:
        while (found := self._nth(name, count)) is None:
            if self._recorded is None:
                self._recorded = anyio.Event()
            await self._recorded.wait()
        return found

    def _not_recorded(self, name: str, count: int, within: float) -> str:
        seen = Counter(self.names)
        listed = ", ".join(f"{other} x{times}" for other, times in seen.most_common(_NAMES_SHOWN)) or "none"
        more = len(seen) - _NAMES_SHOWN
        return (
            f"event {name!r} #{count} not recorded within {within:g} s on the recorder's clock "
            f"({seen[name]} recorded); events recorded: {listed}{f' and {more} more names' if more > 0 else ''}"
        )
