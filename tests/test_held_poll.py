"""The poll that stands in for a held step's model steps: full rate while a server may be about to list,
fewer looks once it has answered empty for a while, bare TCP knocks while it refuses. On the fake clock,
over real loopback MCP."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import anyio
import pytest

from chat_mcp_primer.model import WorkspaceBinding
from chat_mcp_primer.testing import (
    EventRecorder,
    InMemoryWorkspaces,
    MockClock,
    WorkspaceMCPServer,
    echo_tools,
    free_port,
)
from chat_mcp_primer.workspace import McpEndpoint
from chat_mcp_primer.workspace_mcp import PrimerSettings, TurnWorkspace

pytestmark = pytest.mark.anyio

BINDING = WorkspaceBinding("ws-1", agent_id="agent-1")
# A guard against a hang in real time, never an assertion about speed.
GUARD_S = 20
SETTINGS = PrimerSettings()


def full_rate_looks(settings: PrimerSettings) -> int:
    """The poll's looks at ``prepare_poll_interval`` before it may back off."""
    return math.ceil(settings.prepare_poll_patience / settings.prepare_poll_interval) + 1


def backed_off_looks(settings: PrimerSettings, seconds: float) -> int:
    """At most how many looks the poll makes in ``seconds`` once it backs off: doubling, then the longest pause."""
    looks, pause, spent = 0, settings.prepare_poll_interval, 0.0
    while spent < seconds:
        pause = min(settings.prepare_poll_max_interval, pause * 2)
        spent += pause
        looks += 1
    return looks


def primer_attempts_before(event_log: EventRecorder, moment: float) -> int:
    return sum(1 for event in event_log.named("primer.attempt") if event.at < moment)


def listing_times(event_log: EventRecorder) -> list[float]:
    """When each listing a server answered ended (with or without tools)."""
    return [event.at for event in event_log.named("discovery.server_listed")]


async def held_step(
    clock: MockClock,
    workspaces: InMemoryWorkspaces,
    make_turn: Callable[..., TurnWorkspace],
    endpoint: McpEndpoint,
) -> tuple[list[str], float]:
    """The agent (serving ``endpoint``) is ready and the next step is held for its primer: the workspace
    tools that step is offered, and when it goes on."""
    workspaces.set_agent("ws-1", "agent-1", (endpoint,))
    async with make_turn(BINDING) as turn, clock.autojump():
        turn.agent_ready()
        with anyio.fail_after(GUARD_S):
            offered = await turn.prepare_tools([])
        return [tool.spec.name for tool in offered or ()], clock.now()


async def test_a_step_held_on_a_server_that_never_lists_looks_less_often_after_the_patience(
    clock: MockClock, workspaces: InMemoryWorkspaces, make_turn: Callable[..., TurnWorkspace], event_log: EventRecorder
) -> None:
    with WorkspaceMCPServer(echo_tools("grep"), name="code", clock=clock, ready_at=math.inf) as server:
        offered, held_until = await held_step(clock, workspaces, make_turn, server.endpoint())
    assert offered == []
    assert held_until == pytest.approx(SETTINGS.prepare_wait)  # held for all of it, then the step's own look
    after_patience = SETTINGS.prepare_wait - SETTINGS.prepare_poll_patience
    primer = primer_attempts_before(event_log, held_until)
    bound = primer + full_rate_looks(SETTINGS) + backed_off_looks(SETTINGS, after_patience) + 1
    assert server.list_calls <= bound == primer + 51 + 5 + 1
    # At the full rate the whole hold, it made 86 (the primer's 10, the poll's 75 and the step's own).
    assert server.list_calls < SETTINGS.prepare_wait / SETTINGS.prepare_poll_interval
    # Until the patience ran out, no gap between two looks was longer than one poll interval ...
    times = listing_times(event_log)
    early = [t for t in times if t <= SETTINGS.prepare_poll_patience]
    assert max(b - a for a, b in itertools.pairwise(early)) <= SETTINGS.prepare_poll_interval + 1e-9
    # ... and after it, the held step's looks thinned out to a few.
    late = [t for t in times if SETTINGS.prepare_poll_patience + SETTINGS.prepare_poll_interval < t < held_until]
    primer_late = primer - primer_attempts_before(event_log, SETTINGS.prepare_poll_patience)
    assert len(late) <= backed_off_looks(SETTINGS, after_patience) + primer_late
    [backing_off] = event_log.named("prepare.poll_backing_off")
    assert backing_off.fields["outcome"] == "empty"


@pytest.mark.parametrize("ready_at", [5.0, 9.9])
async def test_a_server_that_starts_listing_within_the_patience_is_found_within_one_poll_interval(
    clock: MockClock,
    workspaces: InMemoryWorkspaces,
    make_turn: Callable[..., TurnWorkspace],
    event_log: EventRecorder,
    ready_at: float,
) -> None:
    with WorkspaceMCPServer(echo_tools("grep"), name="code", clock=clock, ready_at=ready_at) as server:
        offered, found_at = await held_step(clock, workspaces, make_turn, server.endpoint())
    assert offered == ["code__grep"]
    assert ready_at <= found_at <= ready_at + SETTINGS.prepare_poll_interval
    assert not event_log.named("prepare.poll_backing_off")


async def test_a_server_that_starts_listing_after_the_patience_is_found_within_the_longest_pause(
    clock: MockClock, workspaces: InMemoryWorkspaces, make_turn: Callable[..., TurnWorkspace], event_log: EventRecorder
) -> None:
    ready_at = SETTINGS.prepare_poll_patience + 2.0
    with WorkspaceMCPServer(echo_tools("grep"), name="code", clock=clock, ready_at=ready_at) as server:
        offered, found_at = await held_step(clock, workspaces, make_turn, server.endpoint())
    assert offered == ["code__grep"]
    assert ready_at <= found_at <= ready_at + SETTINGS.prepare_poll_max_interval
    assert event_log.named("prepare.poll_backing_off")


async def test_a_refused_endpoint_is_knocked_on_not_dialled_and_gets_the_full_rate_once_it_answers(
    clock: MockClock, workspaces: InMemoryWorkspaces, make_turn: Callable[..., TurnWorkspace], event_log: EventRecorder
) -> None:
    """The server process starts after the patience has passed since the hold began, then lists nothing
    for a while: while it refused, the held step's poll knocked instead of dialling, and it is found
    within one poll interval of listing, as its patience starts when it first answers."""
    port = free_port()
    endpoint = McpEndpoint(server="late", url=f"http://127.0.0.1:{port}/mcp")
    workspaces.set_agent("ws-1", "agent-1", (endpoint,))
    starts_at = SETTINGS.prepare_poll_patience + 1.0
    lists_at = starts_at + 1.5
    server = WorkspaceMCPServer(echo_tools("grep"), name="late", clock=clock, ready_at=lists_at, port=port)
    try:
        async with make_turn(BINDING) as turn, clock.autojump():
            turn.agent_ready()

            async def start_later() -> None:
                await clock.sleep(starts_at, "test")
                server.start()

            with anyio.fail_after(GUARD_S):
                async with anyio.create_task_group() as group:
                    group.start_soon(start_later)
                    offered = await turn.prepare_tools([])
            found_at = clock.now()
    finally:
        server.stop()
    assert [tool.spec.name for tool in offered or ()] == ["late__grep"]
    assert lists_at <= found_at <= lists_at + SETTINGS.prepare_poll_interval
    refused = [event.at for event in event_log.named("discovery.server_failed") if event.at < starts_at]
    # The primer's attempts and the poll's first look, which found it refusing: not one every poll interval.
    assert len(refused) == primer_attempts_before(event_log, starts_at) + 1


@pytest.mark.parametrize(
    ("ready_at", "reason"),
    [(0.0, "primer ended"), (5.0, "tools listed"), (math.inf, "bound")],
    ids=["the-primer-found-them", "the-poll-found-them", "never"],
)
async def test_a_held_step_says_why_it_went_on(
    clock: MockClock,
    workspaces: InMemoryWorkspaces,
    make_turn: Callable[..., TurnWorkspace],
    event_log: EventRecorder,
    ready_at: float,
    reason: str,
) -> None:
    with WorkspaceMCPServer(echo_tools("grep"), name="code", clock=clock, ready_at=ready_at) as server:
        offered, _ = await held_step(clock, workspaces, make_turn, server.endpoint())
    [ended] = event_log.named("prepare.hold_ended")
    assert ended.fields["reason"] == reason
    assert ended.fields["chat_id"] == "chat-1"
    assert offered == ([] if reason == "bound" else ["code__grep"])
