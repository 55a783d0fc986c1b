"""MockClock (exact, test-driven time with tagged sleeps and traps) and run_with_timeout on it."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from chat_mcp_primer.clock import run_with_timeout
from chat_mcp_primer.clock import tags as clock_tags
from chat_mcp_primer.testing import MockClock, MockClockError

pytestmark = pytest.mark.anyio


async def sleeper(clock: MockClock, seconds: float, log: list[str], label: str, *tags: str) -> None:
    await clock.sleep(seconds, *tags)
    log.append(label)


# -- now, sleep, advance ---------------------------------------------------------------------------


async def test_now_is_exact_and_moves_only_when_advanced(clock: MockClock) -> None:
    assert clock.now() == 0.0
    await anyio.lowlevel.checkpoint()
    assert clock.now() == 0.0
    await clock.advance(2.5)
    assert clock.now() == 2.5
    await clock.advance(0.25)
    assert clock.now() == 2.75
    assert MockClock(start=100.0).now() == 100.0


async def test_advance_rejects_negative_seconds(clock: MockClock) -> None:
    with pytest.raises(ValueError, match="forward"):
        await clock.advance(-1)
    assert clock.now() == 0.0


async def test_pending_lists_tags_of_sleeps_earliest_deadline_first(clock: MockClock) -> None:
    log: list[str] = []
    async with anyio.create_task_group() as group:
        group.start_soon(sleeper, clock, 5, log, "late", "primer", "backoff")
        group.start_soon(clock.sleep_until, 3.0, "dial")
        await anyio.wait_all_tasks_blocked()
        assert clock.pending == (("dial",), ("primer", "backoff"))
        group.cancel_scope.cancel()


async def test_advance_wakes_due_sleepers_and_returns_only_after_they_resumed(clock: MockClock) -> None:
    log: list[str] = []
    async with anyio.create_task_group() as group:
        group.start_soon(sleeper, clock, 2, log, "a")
        group.start_soon(sleeper, clock, 2, log, "b")
        group.start_soon(sleeper, clock, 5, log, "c")
        await anyio.wait_all_tasks_blocked()

        await clock.advance(2)
        log.append("advanced to 2")
        await clock.advance(1)
        log.append("advanced to 3")
        await clock.advance(2)
        log.append("advanced to 5")

    assert sorted(log[:2]) == ["a", "b"]
    assert log[2:] == ["advanced to 2", "advanced to 3", "c", "advanced to 5"]
    assert clock.now() == 5


async def test_advance_past_a_pending_deadline_raises_and_does_not_move_time(clock: MockClock) -> None:
    log: list[str] = []
    async with anyio.create_task_group() as group:
        group.start_soon(sleeper, clock, 3, log, "woke", "retry")
        await anyio.wait_all_tasks_blocked()

        with pytest.raises(MockClockError, match="pending deadline"):
            await clock.advance(5)
        assert clock.now() == 0.0
        assert clock.peek() == 3.0
        assert clock.pending == (("retry",),)
        assert log == []

        await clock.advance(3)
    assert log == ["woke"]


async def test_advance_next_jumps_to_the_earliest_deadline_and_returns_the_amount(clock: MockClock) -> None:
    log: list[str] = []
    async with anyio.create_task_group() as group:
        group.start_soon(sleeper, clock, 7, log, "seven")
        group.start_soon(sleeper, clock, 4, log, "four")
        await anyio.wait_all_tasks_blocked()

        assert await clock.advance_next() == 4.0
        assert clock.now() == 4.0
        assert log == ["four"]

        assert await clock.advance_next() == 3.0
        assert clock.now() == 7.0
        assert log == ["four", "seven"]


async def test_advance_next_with_nothing_sleeping_raises(clock: MockClock) -> None:
    with pytest.raises(MockClockError, match="nothing sleeping"):
        await clock.advance_next()
    assert clock.now() == 0.0


async def test_peek_gives_seconds_to_the_next_deadline_or_none(clock: MockClock) -> None:
    assert clock.peek() is None
    log: list[str] = []
    async with anyio.create_task_group() as group:
        group.start_soon(sleeper, clock, 5, log, "five")
        await anyio.wait_all_tasks_blocked()
        assert clock.peek() == 5.0
        await clock.advance(2)
        assert clock.peek() == 3.0
        await clock.advance(3)
    assert clock.peek() is None
    assert log == ["five"]


async def test_sleep_until_a_past_or_present_deadline_returns_at_once(clock: MockClock) -> None:
    await clock.advance(10)
    with anyio.fail_after(5):  # guard only: nothing advances the clock, so a real wait would hang
        await clock.sleep_until(3.0, "past")
        await clock.sleep_until(10.0, "now")
        await clock.sleep(0, "zero")
    assert clock.now() == 10.0
    assert clock.peek() is None
    assert clock.pending == ()


# -- traps ----------------------------------------------------------------------------------------


async def test_trap_catches_only_sleeps_whose_tags_include_all_trap_tags(clock: MockClock) -> None:
    with clock.trap("primer", "backoff") as trap:
        async with anyio.create_task_group() as group:
            group.start_soon(clock.sleep, 1, "primer", "backoff", "attempt")
            group.start_soon(clock.sleep, 2, "primer")
            group.start_soon(clock.sleep, 3, "backoff")
            group.start_soon(clock.sleep, 4, "backoff", "primer")
            await anyio.wait_all_tasks_blocked()

            assert trap.caught == 2
            caught = [await trap.wait(), await trap.wait()]
            assert sorted(call.tags for call in caught) == [("backoff", "primer"), ("primer", "backoff", "attempt")]
            assert sorted(call.deadline for call in caught) == [1.0, 4.0]
            # Trapped sleeps block before their timer is armed: only the others are pending.
            assert clock.pending == (("primer",), ("backoff",))
            group.cancel_scope.cancel()


async def test_trapped_sleep_blocks_until_released(clock: MockClock) -> None:
    log: list[str] = []
    with clock.trap("dial") as trap:
        async with anyio.create_task_group() as group:
            group.start_soon(sleeper, clock, 5, log, "dialled", "dial")
            trapped = await trap.wait()
            assert trapped.tags == ("dial",)
            assert trapped.deadline == 5.0
            await anyio.wait_all_tasks_blocked()
            assert clock.peek() is None
            assert log == []

            trapped.release()
            await anyio.wait_all_tasks_blocked()
            assert clock.pending == (("dial",),)
            await clock.advance(5)
        assert log == ["dialled"]
        assert trap.caught == 1


async def test_leaving_the_trap_block_releases_pending_calls_and_stops_catching(clock: MockClock) -> None:
    log: list[str] = []
    async with anyio.create_task_group() as group:
        with clock.trap("dial") as trap:
            group.start_soon(sleeper, clock, 5, log, "first", "dial")
            await trap.wait()
        await anyio.wait_all_tasks_blocked()
        assert clock.pending == (("dial",),)

        group.start_soon(sleeper, clock, 5, log, "second", "dial")
        await anyio.wait_all_tasks_blocked()
        assert trap.caught == 1
        assert list(clock.pending) == [("dial",), ("dial",)]

        assert await clock.advance_next() == 5.0
    assert sorted(log) == ["first", "second"]


async def test_cancelled_sleeper_leaves_no_trace(clock: MockClock) -> None:
    log: list[str] = []
    async with anyio.create_task_group() as group:
        group.start_soon(sleeper, clock, 5, log, "never", "retry")
        await anyio.wait_all_tasks_blocked()
        assert clock.peek() == 5.0
        group.cancel_scope.cancel()

    assert clock.peek() is None
    assert clock.pending == ()
    with pytest.raises(MockClockError):
        await clock.advance_next()
    await clock.advance(100)  # nothing left to jump past
    assert log == []


# -- autojump -------------------------------------------------------------------------------------


async def test_autojump_lets_a_sleeping_task_finish_without_manual_advancing(clock: MockClock) -> None:
    times: list[float] = []

    async def worker() -> None:
        await clock.sleep(10, "work")
        times.append(clock.now())
        await clock.sleep(5, "work")
        times.append(clock.now())

    with anyio.fail_after(5):  # guard only: without autojump this would hang
        async with clock.autojump(), anyio.create_task_group() as group:
            group.start_soon(worker)

    assert times == [10.0, 15.0]
    assert clock.now() == 15.0


# -- run_with_timeout -----------------------------------------------------------------------------


async def test_run_with_timeout_returns_the_result_and_leaves_no_timer(clock: MockClock) -> None:
    async def answer() -> int:
        await anyio.lowlevel.checkpoint()
        return 42

    assert await run_with_timeout(clock, 5, answer, "call") == 42
    assert clock.pending == ()
    assert clock.now() == 0.0


async def test_run_with_timeout_returns_none_results_too(clock: MockClock) -> None:
    async def nothing() -> int | None:
        await anyio.lowlevel.checkpoint()
        return None

    assert await run_with_timeout(clock, 5, nothing) is None


async def test_run_with_timeout_reraises_the_calls_own_exception_unwrapped(clock: MockClock) -> None:
    async def fail() -> int:
        await anyio.lowlevel.checkpoint()
        raise LookupError("no such workspace")

    with pytest.raises(LookupError, match="no such workspace") as excinfo:
        await run_with_timeout(clock, 5, fail, "call")
    assert type(excinfo.value) is LookupError
    assert not isinstance(excinfo.value, BaseExceptionGroup)
    assert clock.pending == ()


async def test_run_with_timeout_raises_timeout_error_when_the_clock_reaches_the_timeout(clock: MockClock) -> None:
    cancelled: list[str] = []
    outcome: list[BaseException | int] = []

    async def hang() -> int:
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.append("call cancelled")
            raise
        return 0

    async def caller() -> None:
        try:
            outcome.append(await run_with_timeout(clock, 5, hang, "tool"))
        except TimeoutError as exc:
            outcome.append(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(caller)
        await anyio.wait_all_tasks_blocked()
        assert clock.pending == (("tool", clock_tags.TIMEOUT),)

        await clock.advance(4)
        await anyio.wait_all_tasks_blocked()
        assert outcome == []

        await clock.advance(1)

    assert len(outcome) == 1
    assert isinstance(outcome[0], TimeoutError)
    assert cancelled == ["call cancelled"]
    assert clock.now() == 5.0


async def test_run_with_timeout_call_finishing_as_the_timer_fires_counts_as_finished(clock: MockClock) -> None:
    outcome: list[str | BaseException] = []

    async def work() -> str:
        await clock.sleep(5, "work")
        return "done"

    async def caller() -> None:
        try:
            outcome.append(await run_with_timeout(clock, 5, work, "timeout"))
        except TimeoutError as exc:
            outcome.append(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(caller)
        await anyio.wait_all_tasks_blocked()
        assert len(clock.pending) == 2
        await clock.advance(5)

    assert outcome == ["done"]


async def test_cancelling_the_caller_of_run_with_timeout_cancels_the_call(clock: MockClock) -> None:
    started = anyio.Event()
    log: list[str] = []

    async def hang() -> int:
        started.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            log.append("call cancelled")
            raise
        return 0

    async def caller() -> None:
        await run_with_timeout(clock, 60, hang, "timeout")
        log.append("caller resumed")

    async with anyio.create_task_group() as group:
        group.start_soon(caller)
        await started.wait()
        group.cancel_scope.cancel()

    assert log == ["call cancelled"]
    assert clock.pending == ()
    assert clock.now() == 0.0


async def test_autojump_never_fires_a_timeout_while_io_is_in_flight(clock: MockClock) -> None:
    """A task waiting on something outside the clock (real I/O) must not see its timeout fire early."""
    outside = anyio.Event()
    outcome: list[str] = []

    async def slow_io() -> str:
        await outside.wait()
        return "answered"

    async def request() -> None:
        outcome.append(await run_with_timeout(clock, 30, slow_io, "io"))

    async with clock.autojump(), anyio.create_task_group() as group:
        group.start_soon(request)
        await clock.wait_for_sleeper("io", clock_tags.TIMEOUT)
        await anyio.wait_all_tasks_blocked()
        assert clock.now() == 0.0  # every task is blocked, yet the timeout was not jumped to
        outside.set()
    assert outcome == ["answered"]
    assert clock.now() == 0.0
