"""One task keeps the deadlines of every held step: in order, earlier ones first, cleared ones skipped."""

from __future__ import annotations

import anyio
import pytest

from chat_mcp_primer._tasks import BackgroundTasks
from chat_mcp_primer.testing import MockClock
from chat_mcp_primer.workspace_mcp._deadlines import Deadlines

pytestmark = pytest.mark.anyio

TAGS = ("test", "deadline")


async def test_each_scope_is_cancelled_at_its_deadline_and_a_cleared_one_never(clock: MockClock) -> None:
    ended: dict[str, float] = {}
    changed = anyio.Event()

    async def held(name: str, deadlines: Deadlines, at: float, clear: bool = False) -> None:
        nonlocal changed
        with anyio.CancelScope() as scope:
            deadline = deadlines.call_at(at, scope.cancel)
            if clear:
                deadline.clear()
            await clock.sleep(100, "held")
        ended[name] = clock.now()
        changed.set()
        changed = anyio.Event()

    async with BackgroundTasks() as tasks, anyio.create_task_group() as group:
        deadlines = Deadlines(clock, tasks, *TAGS)
        group.start_soon(held, "late", deadlines, 5.0)
        await clock.wait_for_sleeper(*TAGS)
        group.start_soon(held, "early", deadlines, 2.0)  # earlier than the one the task sleeps for
        group.start_soon(held, "cleared", deadlines, 1.0, True)
        await clock.wait_for_sleeper("held", count=3)
        await clock.advance(2.0)
        while "early" not in ended:
            await changed.wait()
        await clock.advance(3.0)
        while "late" not in ended:
            await changed.wait()
        assert ended == {"early": 2.0, "late": 5.0}  # the cleared one is still held
        group.cancel_scope.cancel()
