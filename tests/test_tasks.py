"""The library's task group: children owned, failures raised, and a cancellation of the host never undone."""

from __future__ import annotations

import asyncio

import anyio
import anyio.lowlevel
import pytest

from chat_mcp_primer._tasks import BackgroundTasks, TaskGroup, run_in_own_task

pytestmark = pytest.mark.anyio


# Passes of the event loop the host needs to take a Task.cancel(): wake, unwind into the group's exit,
# cancel the children. One is enough on asyncio, whose ready queue is first in, first out; three spare.
HOST_PASSES = 3


async def owe_the_host_an_uncancel(parked: anyio.Event, release: anyio.Event) -> None:
    """What a timed call does once its call is done: cancel a scope of its own. The cancellation reaches
    the task, which now owes it an ``uncancel()``, and the scope is left only once the host is being
    cancelled: when anyio's own task group would have the host pay that debt."""
    with anyio.CancelScope() as own:
        own.cancel()
        try:
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                parked.set()
                await release.wait()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # Task.cancel() and cancelling() are asyncio's
async def test_a_host_cancelled_from_outside_stays_cancelled_whatever_its_children_cancelled() -> None:
    parked, release = anyio.Event(), anyio.Event()
    seen: list[int] = []

    async def host() -> None:
        try:
            async with TaskGroup() as group:
                group.start_soon(owe_the_host_an_uncancel, parked, release)
                await anyio.sleep_forever()
        except asyncio.CancelledError:
            seen.append(asyncio.current_task().cancelling())  # type: ignore[union-attr]
            raise

    task = asyncio.create_task(host())
    await parked.wait()
    task.cancel()
    for _ in range(HOST_PASSES):
        await asyncio.sleep(0)
    release.set()
    await asyncio.wait({task})
    assert task.cancelled()
    assert seen == [1]  # an enclosing asyncio.TaskGroup or timeout would see the cancellation as its caller's


async def sleep_until_cancelled(cancelled: list[str], name: str) -> None:
    try:
        await anyio.sleep_forever()
    finally:
        cancelled.append(name)


async def test_leaving_the_block_waits_for_every_child() -> None:
    finished: list[int] = []

    async def child(number: int) -> None:
        for _ in range(number):
            await anyio.lowlevel.checkpoint()
        finished.append(number)

    async with TaskGroup() as group:
        for number in (3, 1, 2):
            group.start_soon(child, number)
    assert sorted(finished) == [1, 2, 3]
    assert group.running == 0


async def test_a_failing_child_cancels_its_siblings_and_the_exit_raises_its_failure() -> None:
    cancelled: list[str] = []

    async def fail() -> None:
        await anyio.lowlevel.checkpoint()
        raise ValueError("broken child")

    async def run_both() -> None:
        async with TaskGroup() as group:
            group.start_soon(sleep_until_cancelled, cancelled, "sibling")
            group.start_soon(fail)

    with pytest.raises(BaseExceptionGroup) as raised:
        await run_both()
    assert [type(exc) for exc in raised.value.exceptions] == [ValueError]
    assert cancelled == ["sibling"]


async def test_an_exception_of_the_block_cancels_the_children_and_propagates_unwrapped() -> None:
    cancelled: list[str] = []

    async def fail_in_the_block() -> None:
        async with TaskGroup() as group:
            group.start_soon(sleep_until_cancelled, cancelled, "child")
            await anyio.lowlevel.checkpoint()
            raise KeyError("the block's own error")

    with pytest.raises(KeyError):
        await fail_in_the_block()
    assert cancelled == ["child"]


async def test_an_outer_cancel_scope_cancels_the_children_of_a_waiting_block() -> None:
    cancelled: list[str] = []

    with anyio.CancelScope() as outer:
        async with TaskGroup() as group:
            group.start_soon(sleep_until_cancelled, cancelled, "child")
            await anyio.lowlevel.checkpoint()
            outer.cancel()
    assert outer.cancelled_caught
    assert cancelled == ["child"]


async def test_run_in_own_task_hands_back_the_result_and_the_exception_unwrapped() -> None:
    async def answer() -> int:
        await anyio.lowlevel.checkpoint()
        return 42

    async def refuse() -> int:
        await anyio.lowlevel.checkpoint()
        raise PermissionError("no")

    assert await run_in_own_task(answer) == 42
    with pytest.raises(PermissionError, match="no"):
        await run_in_own_task(refuse)


async def test_background_tasks_are_cancelled_when_the_block_ends() -> None:
    cancelled: list[str] = []

    async with BackgroundTasks() as background:
        background.start_soon(sleep_until_cancelled, cancelled, "background")
        await anyio.lowlevel.checkpoint()
    assert cancelled == ["background"]
