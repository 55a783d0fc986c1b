"""Whole turns against a faulty workspace, and the checks every row of the fault matrix makes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio

from chat_mcp_primer import Chat, ChatRuntime, ModelRequest, ModelResponse, ToolResult, TurnResult
from chat_mcp_primer.model import WorkspaceBinding
from chat_mcp_primer.runtime import WorkspacesFrom
from chat_mcp_primer.testing import (
    EventRecorder,
    InMemoryWorkspaces,
    MockClock,
    ProvisionTool,
    ScriptedModel,
    ScriptStep,
    call,
)
from chat_mcp_primer.workspace import McpEndpoint
from chat_mcp_primer.workspace_mcp import (
    CacheKey,
    ListingLimits,
    MemoryToolCache,
    PrimerSettings,
    RemoteTool,
    SessionSettings,
)

# Guards a whole turn against hanging in real time.
GUARD_S = 30

WORKSPACE = "ws-1"
AGENT = "agent-1"
READY = WorkspaceBinding(WORKSPACE, build_id="build-1", agent_id=AGENT)
# The reference budgets; only the held step's polls are sparser, as each costs a real listing here.
FAULT_SETTINGS = PrimerSettings(prepare_poll_interval=1.0)
# What the model is told when it calls docs__search, a tool it was never offered.
UNKNOWN = "unknown tool 'docs__search'; call one of the tools you were offered"


@dataclass(frozen=True, slots=True)
class FaultTurn:
    """What one turn against a faulty workspace left: for the row's assertions."""

    result: TurnResult
    model: ScriptedModel
    events: EventRecorder
    cache: MemoryToolCache
    settings: PrimerSettings

    def offered(self, step: int, prefix: str = "") -> list[str]:
        names = self.model.offered[step]
        return [name for name in names if "__" in name and name.startswith(prefix)]

    @property
    def tool_results(self) -> list[ToolResult]:
        return [message.result for message in self.result.added if message.result is not None]

    def result_of(self, tool: str) -> ToolResult:
        [result] = [m.result for m in self.result.added if m.result is not None and m.tool_name == tool]
        return result

    @property
    def failures(self) -> set[str]:
        """Why listings failed, as the ``discovery.server_failed`` events said."""
        return {str(event.fields["reason"]) for event in self.events.named("discovery.server_failed")}

    async def cached(self, server: str) -> tuple[RemoteTool, ...] | None:
        return await self.cache.get(CacheKey(WORKSPACE, AGENT, server))

    def assert_discovery_bounded(self) -> None:
        """The primer started no attempt after its budget, made at most max_attempts, and ended within
        the budget plus one attempt (dial and listing)."""
        settings = self.settings
        [started] = self.events.named("primer.started")
        ends = [*self.events.named("primer.succeeded"), *self.events.named("primer.gave_up")]
        assert len(ends) == 1, self.events.names
        attempts = self.events.named("primer.attempt")
        assert 1 <= len(attempts) <= settings.max_attempts
        one_attempt = SessionSettings().dial_timeout + ListingLimits().discovery_timeout
        assert ends[0].at <= started.at + settings.max_wait + one_attempt
        assert not self.events.named("primer.cancelled")
        self.assert_listings_bounded()

    @property
    def listings(self) -> int:
        """Listings the client made (each possibly several pages), however they ended."""
        names = ("discovery.server_listed", "discovery.server_failed", "discovery.stale_listing_dropped")
        return sum(len(self.events.named(name)) for name in names)

    def assert_listings_bounded(self) -> None:
        """Never more listings than the primer's attempts, one per step, and the polls of one bounded wait
        for the primer before a step: a failing server is not hammered."""
        settings = self.settings
        polls = int(settings.prepare_wait / settings.prepare_poll_interval)
        assert self.listings <= settings.max_attempts + len(self.model.offered) + polls

    def assert_sessions_closed(self) -> None:
        """Every MCP session the client dialled was closed by the end of the turn's runtime."""
        assert len(self.events.named("session.closed")) == len(self.events.named("session.dialing"))


def assert_never_offered(turn: FaultTurn) -> None:
    """The turn completed, the model was never offered the server's tools and was told so when it called
    one anyway, discovery stayed within its budget, nothing was cached, and every session was closed."""
    assert turn.result.stop_reason == "completed"
    assert all(turn.offered(step) == [] for step in range(len(turn.model.offered)))
    assert turn.result_of("docs__search").text == UNKNOWN
    assert turn.result_of("docs__search").is_error
    turn.assert_discovery_bounded()
    [gave_up] = turn.events.named("primer.gave_up")
    assert gave_up.fields["outcome"] in ("error", "empty")
    assert len(turn.cache) == 0
    turn.assert_sessions_closed()


async def run_fault_turn(
    clock: MockClock,
    endpoints: Sequence[McpEndpoint],
    then: Sequence[ScriptStep],
    *,
    settings: PrimerSettings | None = None,
    sessions: SessionSettings | None = None,
    listing: ListingLimits | None = None,
    expire: Callable[[tuple[str, ...]], bool] | None = None,
    events: EventRecorder | None = None,
) -> FaultTurn:
    """One whole turn: step 0 provisions the workspace (the primer starts), then the model plays ``then``.

    The clock jumps by itself whenever every task waits; timeouts in flight hold it back unless
    ``expire`` says the wait will never end by itself.
    """
    settings = settings or FAULT_SETTINGS
    workspaces = InMemoryWorkspaces()
    workspaces.set_agent(WORKSPACE, AGENT, tuple(endpoints))
    events = events or EventRecorder()
    cache = MemoryToolCache()
    model = ScriptedModel([ModelResponse(tool_calls=(call("provision"),)), *then])
    runtime = ChatRuntime(
        model,
        workspaces=WorkspacesFrom(workspaces, tools=lambda turn: [ProvisionTool(turn, READY)]),
        clock=clock,
        cache=cache,
        primer=settings,
        sessions=sessions,
        listing=listing,
        on_event=events,
    )
    with anyio.fail_after(GUARD_S):
        async with clock.autojump(expire=expire), runtime:
            result = await runtime.run_turn(Chat(id="chat-1", owner="alice"), "set up and use the tools")
    return FaultTurn(result=result, model=model, events=events, cache=cache, settings=settings)


def calls(clock: MockClock, *names: str, text: str = "done") -> list[ScriptStep]:
    """A model that calls ``names`` (in one step) after provisioning, then thinks long enough for any
    primer to have ended by itself (its budget plus one attempt), then answers."""
    settings = PrimerSettings()
    thinking = settings.max_wait + SessionSettings().dial_timeout + ListingLimits().discovery_timeout

    async def think(request: ModelRequest) -> ModelResponse:
        await clock.sleep(thinking, "model")
        return ModelResponse(text=text)

    return [ModelResponse(tool_calls=tuple(call(name) for name in names)), think]
