"""Shared pieces of the benchmarks: result rows, statistics, a model that keeps working, a provisioning
tool, loopback servers, a warm-up, and an event-loop lag and memory monitor."""

from __future__ import annotations

import contextlib
import gc
import math
import resource
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import anyio

from chat_mcp_primer import (
    MemoryToolCache,
    ModelRequest,
    ModelResponse,
    SystemClock,
    ToolResult,
    ToolSpec,
    WorkspaceBinding,
)
from chat_mcp_primer.events import Events
from chat_mcp_primer.testing import InMemoryWorkspaces, WorkspaceMCPServer, call, echo_tools
from chat_mcp_primer.workspace_mcp._hub import WorkspaceMcpHub

# Every loop that waits on something in real time gives up after this many seconds.
GUARD_S = 60.0


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the final table: a metric measured for ours (primed) and, where it applies, the reference."""

    benchmark: str
    metric: str
    ours: str
    reference: str
    target: str
    met: bool | None = None  # None: informative only, no target


@dataclass(slots=True)
class Section:
    """What one benchmark hands back: its rows and the notes printed under the table."""

    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation between closest ranks; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    if rank == low or math.isinf(ordered[high]):  # infinity (a trial that never finished) stays infinite
        return ordered[low] if rank == low else ordered[high]
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "n/a"
    if math.isinf(seconds):
        return "never"
    return f"{seconds * 1000:.0f} ms"


def us(seconds: float) -> str:
    if math.isnan(seconds):
        return "n/a"
    return f"{seconds * 1e6:.1f} µs"


def pct(share: float) -> str:
    return "n/a" if math.isnan(share) else f"{share * 100:.0f}%"


class CheckStatus:
    """A cheap built-in tool the model calls while it waits for the workspace tools."""

    spec = ToolSpec(name="check_status", description="Report how the task is going.")

    async def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        return ToolResult("still working")


@dataclass(slots=True)
class Offered:
    """When a chat's model first saw the workspace tools."""

    step: int
    at: float


class WorkingModel:
    """A model that behaves like a real one while a workspace comes up.

    Step 0 calls ``provision``. Every later step that is not offered a tool starting with ``prefix`` takes
    ``step_seconds`` (a sleep standing in for inference) and calls the cheap ``check_status`` tool; the
    first step that is offered one records the time and ends the turn, and so does the first step that
    starts ``gives_up_after`` seconds or more after step 0 (tools that never come). Chats are told apart by
    the text of their user message, so one model can serve every chat of a shared runtime.
    """

    def __init__(
        self,
        prefix: str,
        *,
        step_seconds: float,
        now: Callable[[], float] = time.monotonic,
        gives_up_after: float = math.inf,
    ) -> None:
        self.prefix = prefix
        self.step_seconds = step_seconds
        self.now = now
        self.gives_up_after = gives_up_after
        self.offered: dict[str, Offered] = {}
        self.step_starts: dict[str, list[float]] = {}

    async def respond(self, request: ModelRequest) -> ModelResponse:
        at = self.now()
        chat = request.messages[0].text if request.messages else ""
        self.step_starts.setdefault(chat, []).append(at)
        if request.step == 0:
            return ModelResponse(text="Setting up a workspace.", tool_calls=(call("provision"),))
        if any(name.startswith(self.prefix) for name in request.tool_names):
            self.offered.setdefault(chat, Offered(request.step, at))
            return ModelResponse(text="The workspace tools are here.")
        if at - self.step_starts[chat][0] >= self.gives_up_after:
            return ModelResponse(text="The workspace tools never came.")
        await anyio.sleep(self.step_seconds)
        return ModelResponse(text="Working meanwhile.", tool_calls=(call("check_status"),))


def start_servers(servers: Sequence[WorkspaceMCPServer]) -> None:
    """Start loopback servers one after the other (a few ms each). Not in parallel: uvicorn configures
    logging as it starts, and concurrent starts race on it (some servers then log at info level)."""
    for server in servers:
        server.start()


def stop_servers(servers: Iterable[WorkspaceMCPServer]) -> None:
    """Stop loopback servers in parallel: one stop waits out a uvicorn tick (about 0.1 s) and a join."""
    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(lambda server: server.stop(), servers))


async def warm_up() -> None:
    """One untimed dial and listing, so one-time costs (lazy imports, first connection set-up in the SDK)
    are not charged to whichever trial happens to go first. A long-running service is warm too."""
    clock = SystemClock()
    workspaces = InMemoryWorkspaces()
    binding = WorkspaceBinding("ws-warm-up", agent_id="agent-warm-up")
    with WorkspaceMCPServer(echo_tools("warm_up"), name="warm") as server:
        workspaces.set_agent(binding.workspace_id, "agent-warm-up", (server.endpoint(),))
        for _ in range(2):
            hub = WorkspaceMcpHub(cache=MemoryToolCache(), clock=clock, events=Events(clock.now))
            async with hub, hub.turn(chat_id="warm-up", binding=binding, source=workspaces) as turn:
                with anyio.fail_after(GUARD_S):
                    await turn.prepare_tools([])


@contextlib.contextmanager
def harness_frozen() -> Iterator[None]:
    """Collect, then freeze every object alive now (servers, SDK, imports) out of the garbage collector's
    reach while the block runs: a full collection then only walks what the measured code allocated, not
    the benchmark harness (a hundred uvicorn servers make each full collection take 0.1 to 0.3 s)."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def rss_bytes() -> int:
    """Resident memory of this process now (Linux /proc), else its peak so far (ru_maxrss)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
        return pages * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


class GcPauses:
    """Records CPython's garbage collections (when each began and ended, time.perf_counter) while
    recording; `install` and `uninstall` hook it into the collector.

    A full collection walks every tracked object of the process, the chats' state included: with a
    thousand chats in flight it takes tens of milliseconds, whatever the library does in that pass. The
    tables show those pauses beside the lag and the shutdown time they fall in, so the two can be told
    apart; the targets are still judged on the totals.
    """

    def __init__(self) -> None:
        self.pauses: list[tuple[float, float, int]] = []  # (began, ended, generation)
        self._began = math.nan

    def _note(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.pauses.append((self._began, time.perf_counter(), info["generation"]))

    def install(self) -> None:
        gc.callbacks.append(self._note)

    def uninstall(self) -> None:
        if self._note in gc.callbacks:
            gc.callbacks.remove(self._note)

    def within(self, start: float, end: float) -> float:
        """Seconds spent collecting between ``start`` and ``end``."""
        return sum(min(e, end) - max(b, start) for b, e, _ in self.pauses if b < end and e > start)

    def longest(self, after: float = -math.inf) -> float:
        return max((e - b for b, e, _ in self.pauses if b > after), default=0.0)


class LoopMonitor:
    """Samples event-loop lag (a task sleeping ``interval`` and measuring its overshoot) and resident
    memory, until cancelled or ``limit_s`` has passed."""

    def __init__(self, interval: float = 0.005, limit_s: float = GUARD_S) -> None:
        self.interval = interval
        self.limit_s = limit_s
        self.worst_lag = 0.0
        self.samples = 0
        self.lags: list[tuple[float, float]] = []  # (when the sleep began, time.perf_counter; its overshoot)
        self.baseline_rss = rss_bytes()
        self.peak_rss = self.baseline_rss
        self.collections = GcPauses()

    @property
    def rss_growth(self) -> int:
        return self.peak_rss - self.baseline_rss

    def worst_lag_after(self, moment: float) -> float:
        """The worst overshoot of a sleep that began after ``moment`` (time.perf_counter)."""
        return max((lag for began, lag in self.lags if began > moment), default=math.nan)

    def worst_lag_between_collections(self, moment: float = -math.inf) -> float:
        """Like `worst_lag_after`, leaving out the samples during which the garbage collector ran."""
        lags = (
            lag
            for began, lag in self.lags
            if began > moment and not self.collections.within(began, began + self.interval + lag)
        )
        return max(lags, default=math.nan)

    async def run(self) -> None:
        self.collections.install()
        try:
            for _ in range(math.ceil(self.limit_s / self.interval)):
                before = time.perf_counter()
                await anyio.sleep(self.interval)
                lag = time.perf_counter() - before - self.interval
                self.lags.append((before, lag))
                self.worst_lag = max(self.worst_lag, lag)
                self.samples += 1
                self.peak_rss = max(self.peak_rss, rss_bytes())
        finally:
            self.collections.uninstall()
