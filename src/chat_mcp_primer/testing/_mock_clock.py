from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType

import anyio
import anyio.lowlevel
import sniffio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from chat_mcp_primer._tasks import BackgroundTasks
from chat_mcp_primer.clock import tags as clock_tags


class MockClockError(AssertionError):
    """A test drove the clock in a way that would skip a pending deadline, or had nothing to advance to."""


@dataclass(eq=False, slots=True)
class _Sleeper:
    deadline: float
    order: int
    tags: tuple[str, ...]
    woken: anyio.Event = field(default_factory=anyio.Event)
    resumed: anyio.Event = field(default_factory=anyio.Event)


@dataclass(eq=False, slots=True)
class TrappedCall:
    """A sleep caught by a trap. The sleeping task is blocked until `release` is called."""

    tags: tuple[str, ...]
    deadline: float
    _released: anyio.Event = field(default_factory=anyio.Event)

    def release(self) -> None:
        self._released.set()


class Trap:
    """Catches every sleep whose tags include all of the trap's tags, until closed.

    A caught sleep blocks before its timer is armed, so once `wait` has returned the call, the test knows
    the code reached that wait, and can move time knowing what will fire.
    """

    def __init__(self, tags: tuple[str, ...]) -> None:
        self.tags = tags
        self._send: MemoryObjectSendStream[TrappedCall]
        self._receive: MemoryObjectReceiveStream[TrappedCall]
        self._send, self._receive = anyio.create_memory_object_stream[TrappedCall](math.inf)
        self._caught: list[TrappedCall] = []
        self.closed = False

    @property
    def caught(self) -> int:
        """How many calls this trap has caught."""
        return len(self._caught)

    def matches(self, tags: tuple[str, ...]) -> bool:
        return not self.closed and all(tag in tags for tag in self.tags)

    async def wait(self) -> TrappedCall:
        """The next caught call, in the order they were made."""
        return await self._receive.receive()

    def _catch(self, call: TrappedCall) -> None:
        self._caught.append(call)
        self._send.send_nowait(call)

    def close(self) -> None:
        """Stop catching, and release every call caught so far."""
        self.closed = True
        for call in self._caught:
            call.release()
        self._send.close()
        self._receive.close()


class MockClock:
    """A `Clock` whose time moves only when the test moves it, for exact, instant schedules.

    ``now()`` is exact. Sleeps carry tags; `trap` catches them. `advance` moves time, never past the
    next pending deadline, and returns once the sleepers due by then have woken. `advance_next` jumps to
    the next deadline. `autojump` moves time by itself whenever every task is blocked. A cancelled
    sleeper leaves no trace. Works on asyncio and trio.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._sleepers: set[_Sleeper] = set()
        self._traps: list[Trap] = []
        self._order = itertools.count()
        self._sleepers_changed: anyio.Event | None = None
        self.sleeps = 0

    # -- the Clock protocol ------------------------------------------------------------------------

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float, *tags: str) -> None:
        await self.sleep_until(self._now + seconds, *tags)

    async def sleep_until(self, deadline: float, *tags: str) -> None:
        self.sleeps += 1
        for trap in self._traps:
            if trap.matches(tags):
                call = TrappedCall(tags=tags, deadline=deadline)
                trap._catch(call)
                await call._released.wait()
                break
        if deadline <= self._now:
            await anyio.lowlevel.checkpoint()
            return
        sleeper = _Sleeper(deadline=deadline, order=next(self._order), tags=tags)
        self._sleepers.add(sleeper)
        self._note_change()
        try:
            await sleeper.woken.wait()
        finally:
            self._sleepers.discard(sleeper)
            sleeper.resumed.set()
            self._note_change()

    # -- driving time ------------------------------------------------------------------------------

    def peek(self) -> float | None:
        """Seconds until the next pending deadline, or None when nothing sleeps."""
        if not self._sleepers:
            return None
        return max(0.0, min(s.deadline for s in self._sleepers) - self._now)

    @property
    def pending(self) -> tuple[tuple[str, ...], ...]:
        """The tags of the pending sleeps, earliest deadline first."""
        return tuple(s.tags for s in sorted(self._sleepers, key=lambda s: (s.deadline, s.order)))

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` and wake the sleepers due by then.

        Raises `MockClockError` if a pending deadline lies before the target: advance to it first
        (`advance_next`), so no timer is skipped.
        """
        if seconds < 0:
            raise ValueError("time only moves forward")
        target = self._now + seconds
        wait = self.peek()
        if wait is not None and self._now + wait < target:
            raise MockClockError(
                f"advance({seconds:g}) would jump past a pending deadline {wait:g} s from now "
                f"(tags {self.pending[0]}); advance to it first"
            )
        self._now = target
        await self._wake_due()

    async def advance_next(self) -> float:
        """Jump to the next pending deadline, wake the sleepers due, and return the seconds moved."""
        wait = self.peek()
        if wait is None:
            raise MockClockError("advance_next() with nothing sleeping")
        await self.advance(wait)
        return wait

    async def _wake_due(self) -> None:
        due = sorted((s for s in self._sleepers if s.deadline <= self._now), key=lambda s: (s.deadline, s.order))
        for sleeper in due:
            sleeper.woken.set()
        for sleeper in due:
            await sleeper.resumed.wait()

    # -- traps and autojump ------------------------------------------------------------------------

    @contextmanager
    def trap(self, *tags: str) -> Iterator[Trap]:
        """Catch the sleeps tagged with all of ``tags`` while the block runs; releases them on exit."""
        trap = Trap(tags)
        self._traps.append(trap)
        try:
            yield trap
        finally:
            self._traps.remove(trap)
            trap.close()

    def autojump(self, *, expire: Callable[[tuple[str, ...]], bool] | None = None) -> _Autojump:
        """``async with clock.autojump():`` jump to the next deadline whenever every task is blocked.

        For end-to-end tests: time flies through polls, pauses and budgets. It never moves while a wait
        bounded by a timeout (a sleep tagged ``"timeout"`` by `run_with_timeout`) is in flight: a task
        blocked on real I/O to a loopback server looks idle, and neither its timeout nor any other timer
        may fire just because the I/O takes real time. A test of a timeout advances the clock itself, or
        passes ``expire``: it is asked, with the tags of each timeout in flight, whether that wait is one
        the test knows will never end by itself (a server holding the request forever); such timeouts
        do not hold time back, and are jumped to like any other deadline.
        """
        return _Autojump(self, expire)

    async def wait_for_sleeper(self, *tags: str, count: int = 1) -> None:
        """Return once ``count`` sleeps tagged with all of ``tags`` are pending, their deadlines armed.

        Lets a test wait for code running over real sockets to reach a wait, before moving time.
        """
        while sum(all(tag in sleeper.tags for tag in tags) for sleeper in self._sleepers) < count:
            await self._sleepers_change()

    def _note_change(self) -> None:
        if self._sleepers_changed is not None:
            self._sleepers_changed.set()
            self._sleepers_changed = None

    async def _sleepers_change(self) -> None:
        if self._sleepers_changed is None:
            self._sleepers_changed = anyio.Event()
        await self._sleepers_changed.wait()

    async def _jump_when_idle(self, expire: Callable[[tuple[str, ...]], bool] | None) -> None:
        while True:
            await _all_tasks_blocked()
            io_in_flight = any(
                clock_tags.TIMEOUT in sleeper.tags and not (expire is not None and expire(sleeper.tags))
                for sleeper in self._sleepers
            )
            if self._sleepers and not io_in_flight:
                await self.advance_next()
            else:
                # Nothing to jump to, or a wait bounded by a timeout is in flight (real I/O, typically):
                # moving time now would make the outcome depend on how fast that I/O is. Whether such a
                # wait may expire can change in another thread (a server starts holding the request), so
                # with ``expire`` look again shortly even if no sleeper changes.
                if expire is not None and io_in_flight:
                    with anyio.move_on_after(_EXPIRE_POLL_S):
                        await self._sleepers_change()
                else:
                    await self._sleepers_change()


# anyio's wait_all_tasks_blocked on asyncio re-checks every 100 ms, which makes an autojumping test
# crawl; polling at 1 ms, after a few bare checkpoints, finds the idle moment promptly without spinning.
_IDLE_CHECKPOINTS = 20
_IDLE_POLL_S = 0.001
# How often autojump asks ``expire`` again while only timeouts are pending: real time for another
# thread (a server) to reach the state the test waits for.
_EXPIRE_POLL_S = 0.005


async def _all_tasks_blocked() -> None:
    """Return once every other task of the event loop is blocked (on the clock, an event, or I/O)."""
    if sniffio.current_async_library() != "asyncio":
        await anyio.wait_all_tasks_blocked()
        return
    this = asyncio.current_task()
    loop = asyncio.get_running_loop()
    checks = 0
    while True:
        if checks < _IDLE_CHECKPOINTS:
            await anyio.lowlevel.checkpoint()
        else:
            await anyio.sleep(_IDLE_POLL_S)
        checks += 1
        # Idle means no task can run and no callback is queued to wake one: a task waiting on a future
        # that is already being resolved is about to run, not blocked.
        if not _queued_callbacks(loop) and all(task is this or _blocked(task) for task in asyncio.all_tasks()):
            return


def _queued_callbacks(loop: asyncio.AbstractEventLoop) -> int:
    return len(getattr(loop, "_ready", ()))


def _blocked(task: asyncio.Task[object]) -> bool:
    # The same test anyio applies: a task waiting on an unfinished future is blocked.
    waiter = getattr(task, "_fut_waiter", None)
    return waiter is not None and not waiter.done()


class _Autojump:
    def __init__(self, clock: MockClock, expire: Callable[[tuple[str, ...]], bool] | None) -> None:
        self._clock = clock
        self._expire = expire
        self._tasks = BackgroundTasks()

    async def __aenter__(self) -> MockClock:
        await self._tasks.__aenter__()
        self._tasks.start_soon(self._clock._jump_when_idle, self._expire)
        return self._clock

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._tasks.__aexit__(exc_type, exc, traceback)
