"""Memory stays bounded against a flooding workspace server, measured where it counts: the resident memory
of a process (a child, so the test runner's own allocations do not blur it) running a turn against one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

pytestmark = pytest.mark.anyio

CHILD = Path(__file__).with_name("_memory_child.py")
# What one flooded listing may add to the process: the byte bound (8 MiB) read, and what the tools of the
# pages before the tool cap parsed to. Without the bounds a 300 MB body grew the process by gigabytes.
MAX_GROWTH_KIB = 64 * 1024


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the turn runs in the child; this process only waits for it


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("300-mb-body", "response larger than 8 MiB"),
        ("2-million-tools", "response larger than 8 MiB"),
        ("2-million-tools-paged", "the listing holds more than 10000 tools"),
    ],
)
async def test_a_flooded_listing_grows_the_process_by_less_than_64_mb(kind: str, reason: str) -> None:
    done = await anyio.run_process([sys.executable, str(CHILD), kind], stderr=subprocess.DEVNULL)
    measured = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert measured["failures"] == [reason]
    assert measured["floods"] >= 1
    assert measured["growth_kib"] < MAX_GROWTH_KIB, measured
