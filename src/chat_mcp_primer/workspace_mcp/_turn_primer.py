"""The primer of one chat's turn: started when its agent is ready, woken by the agent's bus."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio

from chat_mcp_primer._tasks import BackgroundTasks
from chat_mcp_primer.events import EventName, Events
from chat_mcp_primer.model import WorkspaceBinding
from chat_mcp_primer.workspace import McpEndpoint, WorkspaceMcpSource
from chat_mcp_primer.workspace_mcp._bus import AgentBus, Feed, Unsubscribe, Wake, WakeKind
from chat_mcp_primer.workspace_mcp._discovery import DiscoveryResult
from chat_mcp_primer.workspace_mcp._primer import PrimerReport, run_primer
from chat_mcp_primer.workspace_mcp._probe import connection_probe
from chat_mcp_primer.workspace_mcp._report_watch import report_watch
from chat_mcp_primer.workspace_mcp._signal import Signal
from chat_mcp_primer.workspace_mcp._workspace_watch import workspace_changes

if TYPE_CHECKING:
    from chat_mcp_primer.workspace_mcp._hub import WorkspaceMcpHub

# Every wake-up ends a primer's pause (a retry may now find more), but the held-step poll's "every server
# listed": the listing it made was already published as SERVER_LISTED.
_NOT_FOR_THE_PRIMER = frozenset({WakeKind.TOOLS_LISTED})
# Discovery's own news; every other wake-up comes from outside it and is reported as ``primer.signal``.
_DISCOVERY_NEWS = frozenset(
    {WakeKind.TOOLS_CHANGED, WakeKind.SERVER_LISTED, WakeKind.TOOLS_LISTED, WakeKind.REPORT_CHANGED}
)


@dataclass(slots=True)
class PrimerRun:
    """One primer's run: the scope that cancels it, the event set when it ends, and its report; while it
    runs with early wake-ups, the bus it hears, the signal that ends its pause, and its demands of the
    bus's feeds (the workspace watch, a probe per refused endpoint)."""

    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    ended: anyio.Event = field(default_factory=anyio.Event)
    report: PrimerReport | None = None
    bus: AgentBus | None = None
    wake: Signal = field(default_factory=Signal)
    watch: Unsubscribe | None = None
    probes: dict[str, Unsubscribe] = field(default_factory=dict)
    reports: dict[str, Unsubscribe] = field(default_factory=dict)

    def hear(self, bus: AgentBus, watch: Feed) -> None:
        self.bus = bus
        self.watch = bus.demand("watch", watch)

    def stop_hearing(self) -> None:
        for withdraw in (self.watch, *self.probes.values(), *self.reports.values()):
            if withdraw is not None:
                withdraw()
        self.bus, self.watch, self.probes, self.reports = None, None, {}, {}


class TurnPrimer:
    """At most one primer at a time for the turn: a new one replaces it, a rebind cancels it, and the
    turn's end cancels and awaits it (it runs among the turn's tasks).

    While it runs, with a strategy that wakes early, it demands the feeds that can tell it a retry may
    now succeed, on the agent's bus: the workspace's change stream, and a probe of each endpoint that
    refused connections at the latest attempt. ``on_end`` hears of every run's end, whichever way.
    """

    __slots__ = ("_attempt", "_events", "_hub", "_on_end", "_run", "reports")

    def __init__(
        self,
        hub: WorkspaceMcpHub,
        events: Events,
        attempt: Callable[[], Awaitable[DiscoveryResult]],
        on_end: Callable[[PrimerRun], None],
    ) -> None:
        self._hub = hub
        self._events = events
        self._attempt = attempt
        self._on_end = on_end
        self._run: PrimerRun | None = None
        self.reports: list[PrimerReport] = []

    @property
    def latest(self) -> PrimerRun | None:
        return self._run

    def start(
        self, tasks: BackgroundTasks, bus: AgentBus | None, source: WorkspaceMcpSource, binding: WorkspaceBinding
    ) -> None:
        """Start a primer for ``binding``'s agent (heard on ``bus``), replacing one that runs."""
        self.cancel()
        run = self._run = PrimerRun()
        tasks.start_soon(self._prime, run, bus, source, binding)

    def cancel(self) -> None:
        if self._run is not None:
            self._run.scope.cancel()

    def close(self) -> None:
        """Let go of the turn's callbacks once it has ended (its primers with it): a finished turn is then
        freed at once, not by a later garbage collection that a thousand such turns would make long."""
        self._attempt = _no_attempt
        self._on_end = _no_end

    async def wait(self) -> PrimerReport | None:
        """Wait until the latest primer has ended; its report, or None when none ran or it was cancelled."""
        run = self._run
        if run is None:
            return None
        await run.ended.wait()
        return run.report if run is self._run else None

    def woken(self, wake: Wake) -> None:
        """The agent's bus spoke: end the running primer's pause, if this wake is one that may help it."""
        run = self._run
        if run is None or run.bus is None or wake.kind in _NOT_FOR_THE_PRIMER:
            return
        if wake.kind not in _DISCOVERY_NEWS:
            self._events.emit(EventName.PRIMER_SIGNAL, reason=wake.detail)
        run.wake.set()

    def refused(self, endpoints: Sequence[McpEndpoint]) -> None:
        """The latest attempt found ``endpoints`` refusing connections: while a primer runs, probe exactly
        those (a probe that saw its endpoint accept has ended; one refused again is demanded afresh)."""
        run = self._run
        if run is None or run.bus is None or not (endpoints or run.probes):
            return
        interval = self._hub.strategy.settings.probe_interval
        probes = {
            e.url: run.bus.demand(("probe", e.url), connection_probe(e, self._hub.clock, interval)) for e in endpoints
        }
        for withdraw in run.probes.values():  # after the new demands: a probe still wanted keeps running
            withdraw()
        run.probes = probes

    def pending(self, endpoints: Sequence[McpEndpoint]) -> None:
        """The latest attempt found ``endpoints``' discovery reports pending: while a primer runs, wait on
        exactly those reports (`report_watch`), as `refused` probes refused endpoints."""
        run = self._run
        if run is None or run.bus is None or not (endpoints or run.reports):
            return
        hub = self._hub
        watches = {
            e.url: run.bus.demand(
                ("report", e.url), report_watch(e, hub.reports, hub.clock, hub.strategy.settings, hub.events)
            )
            for e in endpoints
        }
        for withdraw in run.reports.values():  # after the new demands: a watch still wanted keeps running
            withdraw()
        run.reports = watches

    async def _prime(
        self, run: PrimerRun, bus: AgentBus | None, source: WorkspaceMcpSource, binding: WorkspaceBinding
    ) -> None:
        try:
            with run.scope:
                await self._hub.pacer.admit()  # primers started together (a burst of ready agents) start paced
                report = await self._woken_primer(run, bus, source, binding)
                self.reports.append(report)
                run.report = report
        finally:
            run.ended.set()  # on every path: a step held for this primer ends with it
            self._on_end(run)

    async def _woken_primer(
        self, run: PrimerRun, bus: AgentBus | None, source: WorkspaceMcpSource, binding: WorkspaceBinding
    ) -> PrimerReport:
        hub = self._hub
        strategy = hub.strategy
        if not strategy.wakes_early or bus is None:
            return await run_primer(self._attempt, hub.clock, strategy, self._events)
        run.hear(bus, workspace_changes(source, binding, hub.events))
        try:
            return await run_primer(self._attempt, hub.clock, strategy, self._events, wake=run.wake)
        finally:
            run.stop_hearing()


async def _no_attempt() -> DiscoveryResult:
    raise RuntimeError("the turn has ended")


def _no_end(run: PrimerRun) -> None:
    return None
