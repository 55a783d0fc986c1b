"""What the soak measures at its start and end, and how much each measure may grow."""

from __future__ import annotations

import asyncio
import fnmatch
import gc
import os
import threading
import tracemalloc
from collections.abc import Callable
from dataclasses import asdict, dataclass

import anyio

from benchmarks._common import rss_bytes

# A measure is read once it has held still for this many consecutive polls: sockets a moment ago closed by
# the client are noticed by the server threads a little later.
STABLE_POLLS = 5
POLL_S = 0.02
# ...but never waits longer than this for it (then the last reading counts, growth and all).
MAX_SETTLE_S = 5.0

# How much each measure may grow from the start to the end of the soak. Counts of live things (sessions,
# tasks, threads) may not grow at all: the end is measured in the same state as the start (every chat just
# ran a fault-free turn), so any extra one is a leak.
#
# TCP connections: the REST clients (the runtime's and the harness's) keep idle keep-alive connections, as many
# as their busiest moment needed (httpx closes expired ones only when next used), so the count at a reading
# moves by a few with timing. A leak of one connection every hundred turns still crosses 4 in a 500-turn soak.
CONNECTION_TOLERANCE = 4
# Open file descriptors: both ends of every loopback connection live in this process (the servers run in
# threads), so twice the connections' slack.
FD_TOLERANCE = 2 * CONNECTION_TOLERANCE
# Memory traced by Python (tracemalloc), by the file that allocated it. The library's own share may grow by
# at most 256 KiB over the whole soak: the interpreter's caches (interned strings, type caches, free lists)
# settle over the first turns; a leak of one object per turn or per agent grows without bound and crosses it
# within a soak of 500 turns (hundreds of bytes per turn at the very least). The fake deployment keeps every
# build and deleted workspace it ever made, as a real one does: its share ("harness") is informative only.
LIBRARY_MEMORY_TOLERANCE = 256 * 1024
# Resident memory: the allocator keeps freed pages and arenas, so RSS moves in steps of its own; 16 MiB is a
# few arena steps. Growth beyond it with no traced growth points at a leak outside Python's heap (a C library).
RSS_TOLERANCE = 16 * 1024 * 1024

# Where an allocation was made (its innermost frame): the testing package is the harness (the fake deployment,
# its servers, the mock clock, the scripted model); the rest of the package is the library.
HARNESS_FILES = ("*/chat_mcp_primer/testing/*", "*/benchmarks/*")
LIBRARY_FILES = ("*/chat_mcp_primer/*",)
# One frame per traced allocation: tracing deeper stacks makes a turn ten times slower.
TRACE_FRAMES = 1
# The sites that grew most, listed in the JSON result, to say where to look.
TOP_SITES = 8


@dataclass(frozen=True, slots=True)
class Reading:
    """The soak's measures at one moment."""

    server_sessions: int  # MCP sessions the upstream servers hold
    pool_sessions: int  # MCP sessions open in the runtime's pool (the library's own count)
    cached_catalogues: int  # (workspace, agent, server) tool catalogues in the runtime's tool cache
    connections: int  # TCP connections open to the servers (Coder and the MCP upstreams)
    fds: int  # open file descriptors of this process
    tasks: int  # live tasks of this event loop
    threads: int
    traced_library: int  # bytes traced by tracemalloc, allocated by the library
    traced_other: int  # ... by the SDKs and the standard library
    traced_harness: int  # ... by the fake deployment and this benchmark
    traced_total: int
    rss: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


# name, tolerance, what the number is; in reading order.
MEASURES: tuple[tuple[str, int | None, str], ...] = (
    ("server_sessions", 0, "MCP sessions held by the servers"),
    ("pool_sessions", 0, "MCP sessions open in the runtime's pool"),
    ("cached_catalogues", 0, "tool catalogues in the runtime's cache"),
    ("connections", CONNECTION_TOLERANCE, "TCP connections open to the servers"),
    ("fds", FD_TOLERANCE, "open file descriptors"),
    ("tasks", 0, "live asyncio tasks"),
    ("threads", 0, "threads"),
    ("traced_library", LIBRARY_MEMORY_TOLERANCE, "memory allocated by the library"),
    # With one traced frame, what the SDKs and the standard library allocate cannot be told apart between the
    # library's turns and the fake deployment's records (its ids are made by `uuid`, its bodies parsed by
    # `json`), nor from the interpreter's caches (`linecache`): informative, with the sites that grew most
    # listed in the JSON result. Resident memory bounds it all.
    ("traced_other", None, "memory allocated by SDKs and stdlib (informative)"),
    ("traced_harness", None, "memory allocated by the fakes (informative)"),
    ("traced_total", None, "memory traced in all (informative)"),
    ("rss", RSS_TOLERANCE, "resident memory"),
)


def open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1  # not Linux: not measured


def traced() -> tuple[int, int, int, tracemalloc.Snapshot | None]:
    """(library, other, harness) bytes traced now, and the snapshot they were read from."""
    if not tracemalloc.is_tracing():
        return (0, 0, 0, None)
    snapshot = tracemalloc.take_snapshot()
    library = other = harness = 0
    for stat in snapshot.statistics("filename"):
        name = stat.traceback[0].filename
        if any(fnmatch.fnmatch(name, pattern) for pattern in HARNESS_FILES):
            harness += stat.size
        elif any(fnmatch.fnmatch(name, pattern) for pattern in LIBRARY_FILES):
            library += stat.size
        else:
            other += stat.size
    return (library, other, harness, snapshot)


def top_growth(start: tracemalloc.Snapshot | None, end: tracemalloc.Snapshot | None) -> list[str]:
    """The allocation sites that grew most from ``start`` to ``end``, as "file:line +bytes (+count)"."""
    if start is None or end is None:
        return []
    return [
        f"{stat.traceback[0].filename}:{stat.traceback[0].lineno} {stat.size_diff:+,} B ({stat.count_diff:+,})"
        for stat in end.compare_to(start, "lineno")[:TOP_SITES]
    ]


async def read(
    server_sessions: Callable[[], int],
    pool_sessions: Callable[[], int],
    cached_catalogues: Callable[[], int],
    connections: Callable[[], int],
) -> tuple[Reading, tracemalloc.Snapshot | None]:
    """Collect garbage, wait until the counts hold still (bounded), and read every measure."""
    gc.collect()

    def counts() -> tuple[int, ...]:
        return (
            server_sessions(),
            pool_sessions(),
            cached_catalogues(),
            connections(),
            open_fds(),
            len(asyncio.all_tasks()),
        )

    last, stable, waited = counts(), 0, 0.0
    while stable < STABLE_POLLS and waited < MAX_SETTLE_S:
        await anyio.sleep(POLL_S)
        waited += POLL_S
        now = counts()
        stable = stable + 1 if now == last else 0
        last = now
    gc.collect()
    library, other, harness, snapshot = traced()
    total = library + other + harness
    return Reading(*last, threading.active_count(), library, other, harness, total, rss_bytes()), snapshot
