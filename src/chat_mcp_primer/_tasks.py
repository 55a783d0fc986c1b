"""Task groups for library code: every child owned, and a cancellation of the owner never lost."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

import anyio
import anyio.abc
import anyio.lowlevel

T = TypeVar("T")


class TaskGroup:
    """A task group whose children each run in a cancel scope of their own, shielded from the group's.

    Use it as anyio's: ``async with TaskGroup() as group: group.start_soon(...)``. Leaving the block
    waits for the children. A cancellation or an exception of the block, while it runs or while it waits
    for them, cancels them all, waits until they have ended and propagates unchanged. A failing child
    cancels its siblings; the block's exit then raises every failure in a `BaseExceptionGroup` (the
    block's own code is not interrupted).

    Why not anyio's task group as is: on asyncio, a cancel scope that was cancelled and is left while an
    enclosing scope is being cancelled hands the ``uncancel()`` it owes its task to that enclosing
    scope, and anyio 4.16 does so across tasks too: from a child to the group's scope, whose exit calls
    it on the *host* task. An outside ``Task.cancel()`` of the host (a client disconnect in a web server,
    Ctrl-C in the CLI) is then undone: ``cancelling()`` drops to 0, and an enclosing ``asyncio.TaskGroup``
    or ``asyncio.timeout`` takes the cancellation as handled and carries on. Here each child's outermost
    scope is shielded, so nothing a child owes crosses to the host, and anyio's own group scope is never
    cancelled, so the host owes it nothing either: the group cancels its children's scopes itself.
    """

    __slots__ = ("_children", "_failures", "_group", "_idle")

    def __init__(self) -> None:
        self._group: anyio.abc.TaskGroup | None = None
        self._children: set[anyio.CancelScope] = set()
        self._failures: list[BaseException] = []
        self._idle: anyio.Event | None = None  # set when the last child ends, while the block waits

    def start_soon(self, function: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        if self._group is None:
            raise RuntimeError("tasks can only start inside the task group's async with block")
        scope = anyio.CancelScope(shield=True)
        self._children.add(scope)  # from now: a child not started yet must still be cancelled on exit
        self._group.start_soon(self._run, scope, function, args)

    @property
    def running(self) -> int:
        """Children started and not yet ended."""
        return len(self._children)

    def cancel(self) -> None:
        """Cancel every child still running; the block itself goes on."""
        for scope in self._children:
            scope.cancel()

    async def _run(
        self, scope: anyio.CancelScope, function: Callable[..., Coroutine[Any, Any, Any]], args: tuple[Any, ...]
    ) -> None:
        try:
            with scope:
                await function(*args)
        except BaseException as exc:  # kept for the block's exit; raising here would cancel anyio's group scope
            self._failures.append(exc)
            self.cancel()
        finally:
            self._children.discard(scope)
            if not self._children and self._idle is not None:
                self._idle.set()

    async def _children_ended(self) -> None:
        if self._children:
            self._idle = anyio.Event()
            await self._idle.wait()

    async def __aenter__(self) -> TaskGroup:
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
        interrupted: BaseException | None = None
        # No child starts once the block is left, so whether one may end during this exit is known now.
        waited = bool(self._children)
        if exc is None:
            try:
                await self._children_ended()  # where a cancellation of the host reaches us
            except BaseException as caught:
                interrupted = caught
        with anyio.CancelScope(shield=True):  # never cancelled itself: it owes the host nothing
            if exc is not None or interrupted is not None:
                self.cancel()
                await self._children_ended()
            if waited:
                # The last child's task ends in the pass after it told us: let it, so that anyio's exit finds
                # no task to wait for. Waiting there, a host being cancelled would make anyio cancel its group
                # scope: the very debt this class exists to avoid.
                await anyio.lowlevel.checkpoint()
        await group.__aexit__(None, None, None)
        failures, self._failures = self._failures, []
        if interrupted is not None:
            raise interrupted
        if failures and exc is None:
            raise BaseExceptionGroup("unhandled errors in a task group", failures)


async def run_in_own_task(function: Callable[[], Awaitable[T]]) -> T:
    """Await ``function()`` in a task of its own and hand back its result or exception, unwrapped.

    For entry points that run much library code in a caller's task: whatever cancel scopes that code
    cancels and leaves inside itself, a cancellation of the caller is never undone (see `TaskGroup`),
    even when the caller is itself a child of an anyio task group being cancelled. Cancelling the caller
    cancels the call and waits for it to end.
    """
    outcome: list[T] = []
    failure: list[Exception] = []

    async def call() -> None:
        try:
            outcome.append(await function())
        except Exception as exc:  # handed back to the caller unwrapped, below
            failure.append(exc)

    async with TaskGroup() as group:
        group.start_soon(call)
    if failure:
        raise failure[0]
    if not outcome:
        # Only a cancellation of the call's own task ends it without an outcome, and only the group does that,
        # when the caller is cancelled: the caller's cancellation propagates from the group instead.
        raise AssertionError("the call ended without an outcome")  # pragma: no cover
    return outcome[0]


class BackgroundTasks(TaskGroup):
    """Owns background tasks for the span of an ``async with`` block.

    Leaving the block cancels the tasks still running and waits for them. An exception raised by the
    block itself propagates unchanged, never wrapped in an exception group, so code that hosts background
    work keeps its own error contract.
    """

    __slots__ = ()

    async def __aenter__(self) -> BackgroundTasks:
        await super().__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.cancel()  # only the tasks still running: cancelling is not free (anyio describes the canceller)
        await super().__aexit__(exc_type, exc, traceback)
