"""What every row of the fault matrix checks besides its own outcome: nothing is left behind.

`leaks` (autouse) records the test process's open file descriptors and the event loop's tasks before the
test, and checks after it (servers stopped, runtime closed) that none were added. Sessions are counted on
the servers' side by each row, with `WorkspaceMCPServer.wait_until_idle` before the server stops.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import anyio
import pytest

# Real time the other threads (servers) get to close their side of sockets; never an assertion on speed.
_SETTLE_POLLS = 500
_SETTLE_POLL_S = 0.01


def open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def fd_kinds(fds: set[int]) -> list[str]:
    kinds = []
    for fd in sorted(fds):
        try:
            kinds.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            kinds.append("closed meanwhile")
    return kinds


@pytest.fixture(autouse=True)
async def leaks() -> AsyncIterator[None]:
    """Fail the test if it leaves a file descriptor (a socket) open, or a task running."""
    fds_before = open_fds()
    tasks_before = len(anyio.get_running_tasks())
    yield
    added: set[int] = set()
    for _ in range(_SETTLE_POLLS):
        added = open_fds() - fds_before
        if not added:
            break
        await anyio.sleep(_SETTLE_POLL_S)
    assert not added, f"file descriptors left open: {fd_kinds(added)}"
    assert len(anyio.get_running_tasks()) == tasks_before, "tasks left running"
