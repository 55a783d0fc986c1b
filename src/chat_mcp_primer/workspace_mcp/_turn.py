from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from types import TracebackType
from typing import cast

import anyio

from chat_mcp_primer._tasks import BackgroundTasks
from chat_mcp_primer.clock import Clock
from chat_mcp_primer.events import Events
from chat_mcp_primer.model import Tool, WorkspaceBinding
from chat_mcp_primer.workspace import AgentMcp, McpEndpoint, WorkspaceChangeSource, WorkspaceMcpSource
from chat_mcp_primer.workspace_mcp._cache import CacheKey, ToolCache
from chat_mcp_primer.workspace_mcp._discovery import DiscoveryResult, Outcome
from chat_mcp_primer.workspace_mcp._failures import REFUSED, describe_failure
from chat_mcp_primer.workspace_mcp._hub import NOTHING_OFFERED, CatalogueNews, WorkspaceMcpHub
from chat_mcp_primer.workspace_mcp._primer import PrimerReport, run_primer
from chat_mcp_primer.workspace_mcp._proxy import WorkspaceMcpTool
from chat_mcp_primer.workspace_mcp._settings import PrimerSettings
from chat_mcp_primer.workspace_mcp._signals import Signal, Unsubscribe


class TurnWorkspace:
    """The workspace side of one chat turn: its binding, discovery state, MCP sessions and primer.

    Workspace tools report progress through `bind` (the chat is bound to a build: the first "chat
    updated" notification) and `agent_ready` (its agent finished the readiness wait, whatever the
    outcome: the second one, which launches the primer). The chat loop calls `prepare_tools` before
    every step.

    Use as an async context manager. Leaving it cancels the primer and waits for it, *then* closes the
    sessions, so a primer waking from its pause can never dial a connection nobody will close.
    """

    def __init__(
        self,
        *,
        chat_id: str,
        binding: WorkspaceBinding | None,
        source: WorkspaceMcpSource,
        cache: ToolCache,
        clock: Clock,
        settings: PrimerSettings,
        events: Events,
        reserved_names: Iterable[str] = (),
        hub: WorkspaceMcpHub | None = None,
    ) -> None:
        self.chat_id = chat_id
        self._binding = binding
        self._source = source
        self._cache = cache
        self._clock = clock
        self._settings = settings
        self._events = events
        # Without a shared hub (a runtime's), the turn has one of its own, closed with the turn.
        self._own_hub = hub is None
        self._hub = hub or WorkspaceMcpHub(cache=cache, clock=clock, settings=settings, events=events)
        self._sessions = self._hub.sessions
        self._discovery = self._hub.discovery
        self._used: set[CacheKey] = set()
        self._reserved = frozenset(reserved_names)
        # The workspace tools this turn offered last (shared with other turns through the hub).
        self._offered = NOTHING_OFFERED
        self._agent: AgentMcp | None = None
        self._done = False
        self._primers: BackgroundTasks | None = None
        self._primer_scope: anyio.CancelScope | None = None
        self._primer_ended: anyio.Event | None = None
        self._primer_report: PrimerReport | None = None
        self._waited_for: anyio.Event | None = None
        self._hold: tuple[anyio.Event, anyio.CancelScope] | None = None
        self._top_of_turn = binding is not None
        self._refused: list[McpEndpoint] = []
        # Ends the primer's pause early; raised by workspace changes, catalogue changes and the probe.
        self._wake = Signal()
        # While the primer runs: the hub's watch and probes it listens to, and the URLs being probed.
        self._priming = False
        self._unsubscribe: list[Unsubscribe] = []
        self._probed: set[str] = set()
        self.primer_reports: list[PrimerReport] = []

    async def __aenter__(self) -> TurnWorkspace:
        if self._own_hub:
            await self._hub.__aenter__()
        self._primers = BackgroundTasks()
        try:
            await self._primers.__aenter__()
        except BaseException:
            if self._own_hub:
                await self._hub.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        primers, self._primers = self._primers, None
        assert primers is not None
        try:
            await primers.__aexit__(exc_type, exc, traceback)
        finally:
            for key in self._used:
                self._hub.unlisten(key, self._catalogue_news)
            if self._own_hub:
                await self._hub.__aexit__(exc_type, exc, traceback)
            else:
                self._sessions.release(self._used)

    @property
    def binding(self) -> WorkspaceBinding | None:
        return self._binding

    @property
    def discovery_done(self) -> bool:
        return self._done

    @property
    def open_sessions(self) -> int:
        return self._sessions.open_count

    def _catalogue_news(self, key: CacheKey, news: CatalogueNews) -> None:
        """A server of the chat's agent had its tools listed (by any chat: a pausing primer finds them in
        the cache at once) or changed them (offer the new list at the next step, not mid-step)."""
        # A failed attempt forgets the resolved agent (it may have been replaced), but the binding still
        # names it: a primer whose attempts failed must still hear that its agent's tools were listed.
        agent, binding = self._agent, self._binding
        agent_id = agent.agent_id if agent is not None else binding.agent_id if binding is not None else None
        if agent_id is not None and key.agent_id == agent_id:
            if news is CatalogueNews.CHANGED:
                self._done = False
            self._wake.set()

    def reserve_names(self, names: Iterable[str]) -> None:
        """Keep these names (the turn's built-in tools) from ever being given to a workspace tool."""
        self._reserved = self._reserved.union(names)

    def bind(self, binding: WorkspaceBinding | None) -> None:
        """Bind the chat to ``binding``. A different workspace or agent restarts discovery for this turn."""
        previous = self._binding
        self._binding = binding
        self._events.emit(
            "chat.updated",
            chat_id=self.chat_id,
            workspace_id=binding.workspace_id if binding else None,
            build_id=binding.build_id if binding else None,
            agent_id=binding.agent_id if binding else None,
        )
        if binding == previous:
            return
        self._done = False
        self._agent = None
        if self._primer_scope is not None:
            self._primer_scope.cancel()
        if previous is not None:
            keep = binding.agent_id if binding else None
            self._hub.forget_other_agents(previous.workspace_id, keep_agent_id=keep)

    def agent_ready(self, *, fresh: bool = True) -> None:
        """The bound workspace's agent finished its readiness wait: prime its MCP tools in the background.

        ``fresh`` is False when the tool found the agent already running or a build already in progress:
        the reference sends no notification then (its upstream gap 1), so the reference strategy does not
        prime; the primed strategy always does. Replaces a primer already running for this turn. The
        primer is owned by the turn: it is cancelled and awaited when the turn ends.
        """
        if self._primers is None:
            raise RuntimeError("TurnWorkspace is not entered")
        if self._binding is None or (not fresh and self._settings.strategy == "reference"):
            return
        if self._primer_scope is not None:
            self._primer_scope.cancel()
        scope = anyio.CancelScope()
        ended = anyio.Event()
        self._primer_report = None
        self._primer_scope = scope
        self._primer_ended = ended
        self._done = False
        self._primers.start_soon(self._prime, scope, ended)

    async def _prime(self, scope: anyio.CancelScope, ended: anyio.Event) -> None:
        try:
            with scope:
                await self._hub.pacer.admit()  # primers started together (a burst of ready agents) start paced
                report = await self._signalled_primer()
                self.primer_reports.append(report)
                if ended is self._primer_ended:
                    self._primer_report = report
        except BaseException:
            ended.set()  # the turn is ending: a step held for this primer ends with it
            raise
        ended.set()
        hold = self._hold
        if hold is not None and hold[0] is ended:
            hold[1].cancel()  # a step held for this primer goes on now

    async def _signalled_primer(self) -> PrimerReport:
        """Run the primer with, for the primed strategy, the signals that end its pauses early: workspace
        changes, a catalogue change, and an endpoint that refused connections starting to accept. The
        watch and the probes are the hub's, shared with every other chat waiting on the same workspace."""
        if self._settings.strategy == "reference":
            return await run_primer(self._attempt, self._clock, self._settings, self._events, chat_id=self.chat_id)
        binding = self._binding
        if binding is not None and getattr(self._source, "changes", None) is not None:
            source = cast(WorkspaceChangeSource, self._source)
            self._unsubscribe.append(self._hub.signals.watch(source, binding, self._workspace_changed))
        self._priming = True
        self._wake.clear()  # the primer attempts at once: whatever was signalled before is covered
        try:
            self._probe_refused()
            return await run_primer(
                self._attempt, self._clock, self._settings, self._events, chat_id=self.chat_id, wake=self._wake
            )
        finally:
            self._priming = False
            while self._unsubscribe:
                self._unsubscribe.pop()()
            self._probed.clear()

    def _workspace_changed(self, reason: str) -> None:
        self._events.emit("primer.signal", chat_id=self.chat_id, reason=reason)
        self._wake.set()

    def _probe_refused(self) -> None:
        """While the primer runs, have the hub knock on each endpoint that refused connections."""
        if not self._priming:
            return
        for endpoint in self._refused:
            if endpoint.url in self._probed:
                continue
            self._probed.add(endpoint.url)

            def accepts(reason: str, server: str = endpoint.server, url: str = endpoint.url) -> None:
                self._probed.discard(url)
                self._workspace_changed(f"{server} {reason}")

            self._unsubscribe.append(self._hub.signals.probe(endpoint.url, accepts))

    async def wait_for_primer(self) -> PrimerReport | None:
        """Wait until the latest primer has ended; its report, or None when none ran or it was cancelled."""
        ended = self._primer_ended
        if ended is None:
            return None
        await ended.wait()
        return self._primer_report if ended is self._primer_ended else None

    async def prepare_tools(self, tools: Sequence[Tool]) -> list[Tool] | None:
        """Called before every step: one cheap discovery attempt until discovery is done.

        Returns the new tool list when the workspace tools changed, else None. Discovery is marked done
        only when every MCP server of the agent listed tools, or the agent exposes none (confirmed
        empty); after an empty or failed attempt the next step tries again. With the primed strategy, a
        primer in flight for a just-ready agent is first given up to ``prepare_wait`` to finish (once per
        primer), so its tools reach this very step.
        """
        if self._done or self._binding is None:
            return None
        primed = self._settings.strategy == "primed"
        if primed:
            await self._hub.pacer.admit()
            await self._wait_for_fresh_primer()
        result = await self._attempt()
        if result.outcome is Outcome.NO_ENDPOINTS and primed:
            self._events.emit("discovery.confirmed_empty", chat_id=self.chat_id)
            self._done = True
        if result.outcome is Outcome.OK:
            self._done = True
        if not primed and self._top_of_turn:
            # The reference marks discovery done for a chat that had a workspace when the turn began,
            # whatever the first attempt found (its upstream gap 2).
            self._done = True
        self._top_of_turn = False
        return self._merge(tools, result)

    async def _wait_for_fresh_primer(self) -> None:
        """Hold the step until the primer ends, at most ``prepare_wait``, once per primer.

        While the step is held, the model makes no steps, so someone must look for the tools as each
        model step would have: a server that lists its tools without any signal is found within a poll,
        not a primer pause. The look is the hub's, one per agent however many chats are held on it (a
        cheap listing, shared with the primers by single flight, answered from the cache once anyone has
        the tools), on the schedule of `PollSchedule`: every ``prepare_poll_interval`` at first, less
        often at a server that keeps answering without tools, a bare knock at one that refuses.
        """
        ended = self._primer_ended
        if ended is None or ended.is_set() or ended is self._waited_for:
            return
        self._waited_for = ended
        self._events.emit("prepare.waiting_for_primer", chat_id=self.chat_id)
        with anyio.CancelScope() as held:
            # Ended by whichever comes first: the primer's end (`_prime` cancels this scope), the bound (kept
            # by the hub's one deadline task, not a timer task per step), or the tools found by the poll.
            self._hold = (ended, held)
            bound = self._hub.hold_deadlines.cancel_at(self._clock.now() + self._settings.prepare_wait, held)
            stop_polling: Unsubscribe = _nothing
            try:
                stop_polling = self._poll_while_held(await self._resolve_agent(), held)
                await anyio.sleep_forever()
            finally:
                self._hold = None
                bound.clear()
                stop_polling()

    def _poll_while_held(self, agent: AgentMcp | None, held: anyio.CancelScope) -> Unsubscribe:
        """Have the hub look for ``agent``'s tools while the step is held, and let the step go on once
        they are listed (its own attempt then finds them in the cache)."""
        if agent is None:
            return _nothing  # no agent to look at: the primer's end or the bound ends the hold
        hub = self._hub

        async def look() -> DiscoveryResult:
            await hub.pacer.admit()
            return await hub.discovery.attempt(agent)

        return hub.signals.poll((agent.workspace_id, agent.agent_id), look, lambda _: held.cancel())

    async def _attempt(self) -> DiscoveryResult:
        # Many chats start attempts together (their primers start together, a listing wakes them) and go
        # on together (a shared listing ends): both happen a few chats per pass of the event loop.
        pacer = self._hub.pacer
        await pacer.admit()
        result = await self._attempt_now()
        await pacer.admit()
        return result

    async def _attempt_now(self) -> DiscoveryResult:
        agent = await self._resolve_agent()
        if agent is None:
            return DiscoveryResult(Outcome.NO_AGENT)
        for endpoint in agent.endpoints:
            key = CacheKey(agent.workspace_id, agent.agent_id, endpoint.server)
            if key not in self._used:
                self._used.add(key)
                self._hub.listen(key, self._catalogue_news)
        result = await self._discovery.attempt(agent)
        self._refused = [e for e in agent.endpoints if result.failures.get(e.server) == REFUSED]
        self._probe_refused()
        if result.outcome is Outcome.ERROR:
            # The agent may have been replaced behind our back: look it up again next time.
            self._agent = None
        return result

    async def _resolve_agent(self) -> AgentMcp | None:
        binding = self._binding
        if binding is None:
            return None
        agent = self._agent
        if (
            agent is not None
            and agent.workspace_id == binding.workspace_id
            and binding.agent_id in (None, agent.agent_id)
        ):
            return agent
        try:
            agent = await self._source.current_agent(binding)
        except Exception as exc:
            self._events.emit("discovery.resolve_failed", chat_id=self.chat_id, reason=describe_failure(exc))
            return None
        if self._binding is not binding:
            return None  # rebound while we looked: this answer is for the old binding
        await self._hub.agent_seen(binding.workspace_id, agent.agent_id if agent is not None else None)
        self._agent = agent
        if agent is not None and binding.agent_id != agent.agent_id:
            self._binding = replace(binding, agent_id=agent.agent_id)
        return agent

    def _merge(self, tools: Sequence[Tool], result: DiscoveryResult) -> list[Tool] | None:
        agent = result.agent
        current = NOTHING_OFFERED
        if agent is not None and agent is self._agent and result.tools:
            current = self._hub.offer(agent, self._reserved, result.tools)
        if current is self._offered:
            return None
        self._offered = current
        if current.tools:
            self._events.emit("tools.added", chat_id=self.chat_id, count=len(current.tools), names=current.names)
        others = [tool for tool in tools if not isinstance(tool, WorkspaceMcpTool)]
        return [*others, *current.tools]


def _nothing() -> None:
    return None
