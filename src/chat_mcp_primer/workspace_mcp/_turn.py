"""The workspace side of one chat turn: what its tools report, and the tools offered before each step."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from chat_mcp_primer._tasks import BackgroundTasks
from chat_mcp_primer.events import EventName, Events
from chat_mcp_primer.model import Tool, WorkspaceBinding
from chat_mcp_primer.workspace import WorkspaceMcpSource
from chat_mcp_primer.workspace_mcp._bus import Wake, WakeKind
from chat_mcp_primer.workspace_mcp._chat_agent import ChatAgent
from chat_mcp_primer.workspace_mcp._discovery import DiscoveryResult, Outcome
from chat_mcp_primer.workspace_mcp._failures import REFUSED
from chat_mcp_primer.workspace_mcp._held_step import PRIMER_ENDED, StepHolds
from chat_mcp_primer.workspace_mcp._model_note import missing_servers_note
from chat_mcp_primer.workspace_mcp._offers import NOTHING_OFFERED
from chat_mcp_primer.workspace_mcp._primer import PrimerReport
from chat_mcp_primer.workspace_mcp._turn_primer import PrimerRun, TurnPrimer

if TYPE_CHECKING:
    from chat_mcp_primer.workspace_mcp._hub import WorkspaceMcpHub


class TurnWorkspace:
    """The workspace side of one chat turn: its binding, its discovery state, its primer and held steps.

    Made by `WorkspaceMcpHub.turn`, on the hub's cache, clock, settings and events. Workspace tools
    report progress through `bind` (the chat is bound to a build: the first "chat updated"
    notification) and `agent_ready` (its agent finished the readiness wait, whatever the outcome: the
    second one, which launches the primer). The chat loop calls `prepare_tools` before every step.

    Its parts each own their state: `ChatAgent` the binding, the agent and the turn's subscription to
    that agent's wake-up bus; `TurnPrimer` the primer; `StepHolds` the held step. Every wake-up reaches
    them through `_woken`.

    Use as an async context manager. Leaving it cancels the primer and waits for it, *then* hands the
    turn's sessions back to the hub, so a primer waking from its pause can never dial a connection
    nobody will close.
    """

    def __init__(
        self,
        hub: WorkspaceMcpHub,
        *,
        chat_id: str,
        binding: WorkspaceBinding | None,
        source: WorkspaceMcpSource,
        reserved_names: Iterable[str] = (),
    ) -> None:
        self.chat_id = chat_id
        self._hub = hub
        self._events = hub.events.bind(chat_id=chat_id)
        self._agent = ChatAgent(binding, source, hub, self._events, self._woken)
        self._primer = TurnPrimer(hub, self._events, self._attempt, self._primer_ended)
        self._holds = StepHolds(hub, self._events)
        self._tasks: BackgroundTasks | None = None
        self._reserved = frozenset(reserved_names)
        # The workspace tools this turn offered last (shared with other turns through the hub).
        self._offered = NOTHING_OFFERED
        self._done = False
        # The reference's gap 2 applies to a chat that had a workspace when the turn began.
        self._top_of_turn = binding is not None
        # The workspace whose servers the app proxy refused for good in this turn (a revoked session token,
        # path-based apps disabled, another user's app): nothing in the turn can mend that, so the turn
        # makes no further attempt there, neither before a step nor through a primer: every later attempt
        # of the turn answers with this result. The next turn tries afresh.
        self._futile: DiscoveryResult | None = None
        # What the latest attempt's reports said of servers that failed or have no tools, for the model.
        self._note: str | None = None

    async def __aenter__(self) -> TurnWorkspace:
        self._tasks = BackgroundTasks()
        await self._tasks.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        tasks, self._tasks = self._tasks, None
        assert tasks is not None
        try:
            await tasks.__aexit__(exc_type, exc, traceback)
        finally:
            self._agent.close()
            self._primer.close()
            self._hub.sessions.release(self._agent.used)

    @property
    def binding(self) -> WorkspaceBinding | None:
        return self._agent.binding

    @property
    def events(self) -> Events:
        """The turn's events, each carrying its ``chat_id``: for what its workspace tools tell as they run."""
        return self._events

    @property
    def discovery_done(self) -> bool:
        return self._done

    @property
    def open_sessions(self) -> int:
        return self._hub.sessions.open_count

    @property
    def primer_reports(self) -> list[PrimerReport]:
        """The report of every primer of this turn that ran to its end, in order."""
        return self._primer.reports

    def model_notes(self) -> tuple[str, ...]:
        """The notes for the model's next step: which workspace MCP servers failed or offer no tools, and
        why, as the latest discovery attempt found them in their discovery reports."""
        return (self._note,) if self._note is not None else ()

    def reserve_names(self, names: Iterable[str]) -> None:
        """Keep these names (the turn's built-in tools) from ever being given to a workspace tool."""
        self._reserved = self._reserved.union(names)

    def bind(self, binding: WorkspaceBinding | None) -> None:
        """Bind the chat to ``binding``. A different workspace or agent restarts discovery for this turn."""
        previous = self._agent.binding
        self._events.emit(
            EventName.CHAT_UPDATED,
            workspace_id=binding.workspace_id if binding else None,
            build_id=binding.build_id if binding else None,
            agent_id=binding.agent_id if binding else None,
        )
        if binding == previous:
            return
        self._done = False
        self._agent.rebind(binding)
        self._primer.cancel()
        if previous is not None:
            self._hub.forget_other_agents(previous.workspace_id, binding.agent_id if binding else None)

    def agent_ready(self, *, fresh: bool = True) -> None:
        """The bound workspace's agent finished its readiness wait: prime its MCP tools in the background.

        ``fresh`` is False when the tool found the agent already running or a build already in progress:
        the reference sends no notification then (its upstream gap 1), so the reference strategy does not
        prime; the primed strategy always does. Replaces a primer already running for this turn. The
        primer is owned by the turn: it is cancelled and awaited when the turn ends.
        """
        if self._tasks is None:
            raise RuntimeError("TurnWorkspace is not entered")
        binding = self._agent.binding
        if binding is None or (not fresh and not self._hub.strategy.primes_agents_found_ready):
            return
        if self._futile_at(binding.workspace_id) is not None:
            return
        self._done = False
        self._primer.start(self._tasks, self._agent.bus, self._agent.source, binding)

    async def wait_for_primer(self) -> PrimerReport | None:
        """Wait until the latest primer has ended; its report, or None when none ran or it was cancelled."""
        return await self._primer.wait()

    async def prepare_tools(self, tools: Sequence[Tool]) -> list[Tool] | None:
        """Called before every step: one cheap discovery attempt until discovery is done.

        Returns the new tool list when the workspace tools changed, else None. Discovery is marked done
        only when every MCP server of the agent listed tools, or the agent exposes none (confirmed
        empty); after an empty or failed attempt the next step tries again, unless the app proxy refused
        every server that did not list for good (`DiscoveryResult.futile`): then the turn makes no further
        attempt at that workspace, and starts no primer for it. With the primed strategy, a
        primer in flight for a just-ready agent is first given up to ``prepare_wait`` to finish (once per
        primer), so its tools reach this very step.
        """
        if self._done or self._agent.binding is None:
            return None
        strategy = self._hub.strategy
        result: DiscoveryResult | None = None
        if strategy.holds_step:
            await self._hub.pacer.admit()
            run = self._primer.latest
            if run is not None and await self._holds.hold(run.ended, self._agent.resolve):
                result = self._just_found(run)
        if result is None:
            result = await self._attempt()
        if not self._about_current(result):
            # About an agent the turn is no longer on (a rebuild replaced it): nothing of it is offered any
            # more, and nothing is done; the next step looks again.
            return self._merge(tools, DiscoveryResult(Outcome.NO_AGENT))
        if result.confirmed_empty and strategy.confirms_empty:
            self._events.emit(EventName.DISCOVERY_CONFIRMED_EMPTY)
            self._done = True
        if result.outcome is Outcome.OK or (strategy.done_after_first_look and self._top_of_turn):
            self._done = True
        self._top_of_turn = False
        return self._merge(tools, result)

    def _just_found(self, run: PrimerRun) -> DiscoveryResult | None:
        """What the primer this step was just held for, and released by, found, when it found everything for
        the agent the turn is on: the step goes on with it, sparing an attempt that could only find the same."""
        report = run.report
        if report is None or not report.last.complete:
            return None
        return report.last if self._about_current(report.last) else None

    def _about_current(self, result: DiscoveryResult) -> bool:
        """Whether ``result`` is about the agent the turn is on now (or about no agent at all). Lookups make
        a new `AgentMcp` each time, so the same agent found twice is equal, not the same object."""
        agent, current = result.agent, self._agent.current
        return agent is None or agent is current or agent == current

    def _woken(self, wake: Wake) -> None:
        """Every wake-up of the turn's agent, from its bus."""
        if wake.kind is WakeKind.TOOLS_CHANGED:
            self._done = False  # offer the new list at the next step, not mid-step
        elif wake.kind is WakeKind.TOOLS_LISTED:
            self._holds.release("tools listed")
        self._primer.woken(wake)

    def _primer_ended(self, run: PrimerRun) -> None:
        self._holds.release(PRIMER_ENDED, run.ended)  # a step held for this primer goes on now

    async def _attempt(self) -> DiscoveryResult:
        # Many chats start attempts together (their primers start together, a listing wakes them) and go
        # on together (a shared listing ends): both happen a few chats per pass of the event loop.
        pacer = self._hub.pacer
        await pacer.admit()
        result = await self._attempt_now()
        await pacer.admit()
        return result

    async def _attempt_now(self) -> DiscoveryResult:
        agent = await self._agent.resolve()
        if agent is None:
            return DiscoveryResult(Outcome.NO_AGENT)
        futile = self._futile_at(agent.workspace_id)
        if futile is not None:
            return futile
        result = await self._hub.discovery.attempt(agent, self._events)
        self._note = missing_servers_note(result.missing, self._hub.listing.max_note_servers)
        if result.futile:
            self._futile = result
            self._events.emit(EventName.DISCOVERY_FUTILE, servers=sorted(result.final_failures))
        self._primer.refused([e for e in agent.endpoints if result.failures.get(e.server) == REFUSED])
        self._primer.pending([e for e in agent.endpoints if e.server in result.pending])
        if result.outcome is Outcome.ERROR:
            self._agent.forget()  # the agent may have been replaced behind our back: look it up again next time
        return result

    def _futile_at(self, workspace_id: str) -> DiscoveryResult | None:
        """The attempt that found ``workspace_id``'s servers refused for good in this turn, if one did."""
        futile = self._futile
        if futile is not None and futile.agent is not None and futile.agent.workspace_id == workspace_id:
            return futile
        return None

    def _merge(self, tools: Sequence[Tool], result: DiscoveryResult) -> list[Tool] | None:
        agent = result.agent
        current = NOTHING_OFFERED
        if agent is not None and result.tools:  # (about the current agent: `prepare_tools` checked)
            current = self._hub.offers.offer(agent, self._reserved, result.tools)
        if current is self._offered:
            return None
        # The workspace tools this turn offered before are replaced; everything else in the list stays.
        previous, self._offered = self._offered, current
        if current.tools:
            self._events.emit(EventName.TOOLS_ADDED, count=len(current.tools), names=current.names)
        if not previous.tools:
            return [*tools, *current.tools]
        replaced = {id(tool) for tool in previous.tools}
        return [*(tool for tool in tools if id(tool) not in replaced), *current.tools]
