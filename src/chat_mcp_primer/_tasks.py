from __future__ import annotations

from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any

import anyio
import anyio.abc


class BackgroundTasks:
    """Owns background tasks for the span of an ``async with`` block.

    Leaving the block cancels the tasks still running and waits for them. Unlike a bare task group,
    an exception raised by the block itself propagates unchanged, never wrapped in an exception group,
    so code that hosts background work keeps its own error contract.
    """

    __slots__ = ("_group", "_running")

    def __init__(self) -> None:
        self._group: anyio.abc.TaskGroup | None = None
        self._running = 0

    def start_soon(self, function: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        if self._group is None:
            raise RuntimeError("background tasks can only start inside the owner's async with block")
        self._running += 1  # counted from now: a task not started yet must still be cancelled on exit
        self._group.start_soon(self._run, function, args)

    async def _run(self, function: Callable[..., Coroutine[Any, Any, Any]], args: tuple[Any, ...]) -> None:
        try:
            await function(*args)
        finally:
            self._running -= 1

    async def __aenter__(self) -> BackgroundTasks:
        group = anyio.create_task_group()
        await group.__aenter__()
        self._group = group
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        group, self._group = self._group, None
        assert group is not None
        if self._running:  # cancelling is not free (anyio describes the cancelling task): only when needed
            group.cancel_scope.cancel()
        await group.__aexit__(None, None, None)
