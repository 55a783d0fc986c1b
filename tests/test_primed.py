"""The primed strategy: short pauses within the reference's attempt budget, early wake-up on signals,
and a bounded wait before the next step. On the fake clock, over real loopback MCP."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import anyio.lowlevel
import pytest
from tests._turns import shared_turn

from chat_mcp_primer.clock import tags
from chat_mcp_primer.events import Events
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
from chat_mcp_primer.workspace_mcp import MemoryToolCache, PrimerEnd, PrimerSettings, TurnWorkspace
from chat_mcp_primer.workspace_mcp._hub import WorkspaceMcpHub
from chat_mcp_primer.workspace_mcp._strategy import PrimedStrategy

pytestmark = pytest.mark.anyio

BINDING = WorkspaceBinding("ws-1", agent_id="agent-1")
# A guard against a hang in real time, never an assertion about speed.
GUARD_S = 10


def test_primed_schedule_starts_short_and_never_exceeds_the_reference_attempt_count() -> None:
    settings = PrimerSettings()
    at, pauses = 0.0, []
    attempts = 1
    strategy = PrimedStrategy(settings)
    while (pause := strategy.next_pause(attempts, settings.max_wait - at)) is not None and at < settings.max_wait:
        pauses.append(pause)
        at += pause
        attempts += 1
    assert pauses[:5] == [0.1, 0.2, 0.4, 0.8, 1.6]
    assert attempts <= PrimerSettings(strategy="reference").max_attempts == 16
    assert all(pause <= settings.max_wait for pause in pauses)


async def test_attempt_bound_holds_when_tools_never_come(
    clock: MockClock, workspaces: InMemoryWorkspaces, make_turn: Callable[..., TurnWorkspace], event_log: EventRecorder
) -> None:
    with WorkspaceMCPServer(echo_tools("x"), name="never", clock=clock, ready_at=float("inf")) as server:
        workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
        async with make_turn(BINDING) as turn, clock.autojump():
            turn.agent_ready()
            with anyio.fail_after(GUARD_S):
                report = await turn.wait_for_primer()
    assert report is not None
    assert report.end is PrimerEnd.GAVE_UP
    assert report.attempts <= 16
    assert server.list_calls == report.attempts
    times = [event.at for event in event_log.named("primer.attempt")]
    assert times[:3] == [0.0, 0.1, pytest.approx(0.3)]  # a server a moment from ready is tried again at once


async def test_bounded_wait_returns_the_moment_the_primer_finishes(
    clock: MockClock, workspaces: InMemoryWorkspaces, make_turn: Callable[..., TurnWorkspace], event_log: EventRecorder
) -> None:
    with WorkspaceMCPServer(echo_tools("grep"), name="code", clock=clock, ready_at=0.05) as server:
        workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
        async with make_turn(BINDING) as turn, clock.autojump():
            turn.agent_ready()
            with anyio.fail_after(GUARD_S):
                offered = await turn.prepare_tools([])
            finished_at = clock.now()
    assert offered is not None
    assert [tool.spec.name for tool in offered] == ["code__grep"]
    [succeeded] = event_log.named("primer.succeeded")
    assert finished_at == succeeded.at == pytest.approx(0.1)  # the primer's second attempt; not the 15 s bound
    assert event_log.named("prepare.waiting_for_primer")


async def test_another_chats_listing_ends_the_pause_early(
    clock: MockClock, workspaces: InMemoryWorkspaces, cache: MemoryToolCache, event_log: EventRecorder
) -> None:
    """Two chats on one agent, their primers out of step: the moment one lists the tools, the other's
    pause ends and it finds them in the cache, with no listing of its own."""
    settings = PrimerSettings()
    events = Events(clock.now, event_log)
    with WorkspaceMCPServer(echo_tools("grep"), name="code", clock=clock, ready_at=float("inf")) as server:
        workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
        async with WorkspaceMcpHub(cache=cache, clock=clock, primer=settings, events=events) as hub:

            def chat(number: int) -> TurnWorkspace:
                return shared_turn(hub, workspaces, f"chat-{number}", BINDING)

            async with chat(1) as first, chat(2) as second:
                with anyio.fail_after(GUARD_S):
                    first.agent_ready()
                    await clock.wait_for_sleeper(*tags.PRIMER_RETRY)  # listed nothing; pausing until 0.1 s
                    await clock.advance(0.05)
                    second.agent_ready()
                    await clock.wait_for_sleeper(*tags.PRIMER_RETRY, count=2)  # listed nothing; pausing until 0.15 s
                    server.ready_at = clock.now()
                    await clock.advance(0.05)  # the first chat's pause ends; it lists the tools
                    reports = [await first.wait_for_primer(), await second.wait_for_primer()]
    assert [report.end if report else None for report in reports] == [PrimerEnd.SUCCEEDED] * 2
    [woken] = event_log.named("primer.woken")
    assert woken.fields["chat_id"] == "chat-2"
    assert [event.at for event in event_log.named("primer.succeeded")] == [pytest.approx(0.1)] * 2
    assert server.list_calls == 3  # one listing each while empty, then one for both


async def test_held_steps_share_one_poll_per_agent_however_many_chats_wait_on_it(
    clock: MockClock, workspaces: InMemoryWorkspaces, cache: MemoryToolCache, event_log: EventRecorder
) -> None:
    """Three chats held on each of two agents: two polls, not six; each ends with the last step it serves."""
    settings = PrimerSettings()
    events = Events(clock.now, event_log)
    per_agent, agents = 3, ("agent-1", "agent-2")
    offered: list[list[str]] = []
    with (
        WorkspaceMCPServer(echo_tools("grep"), name="code", clock=clock, ready_at=float("inf")) as first,
        WorkspaceMCPServer(echo_tools("grep"), name="code", clock=clock, ready_at=float("inf")) as second,
    ):
        for number, server in enumerate((first, second), start=1):
            workspaces.set_agent(f"ws-{number}", f"agent-{number}", (server.endpoint(),))
        async with WorkspaceMcpHub(cache=cache, clock=clock, primer=settings, events=events) as hub:

            async def chat(number: int, workspace: int) -> None:
                binding = WorkspaceBinding(f"ws-{workspace}", agent_id=f"agent-{workspace}")
                async with shared_turn(hub, workspaces, f"chat-{number}", binding) as turn:
                    turn.agent_ready()
                    tools = await turn.prepare_tools([])
                    offered.append([tool.spec.name for tool in tools or ()])

            with anyio.fail_after(GUARD_S):
                async with anyio.create_task_group() as group:
                    for number in range(per_agent * len(agents)):
                        group.start_soon(chat, number, 1 + number % len(agents))
                    await clock.wait_for_sleeper(*tags.PREPARE_POLL, count=len(agents))
                    while len(event_log.named("prepare.waiting_for_primer")) < per_agent * len(agents):
                        await anyio.lowlevel.checkpoint()
                    for _ in range(10):  # let every held step subscribe
                        await anyio.lowlevel.checkpoint()
                    held_polls = clock.pending.count(tags.PREPARE_POLL)
                    first.ready_at = second.ready_at = clock.now()
                    await clock.advance(settings.prepare_poll_interval)
            polls_left = clock.pending.count(tags.PREPARE_POLL)
    assert held_polls == len(agents)
    assert offered == [["code__grep"]] * (per_agent * len(agents))
    assert polls_left == 0


async def test_a_held_step_looks_for_the_tools_itself_between_the_primers_attempts(
    clock: MockClock, workspaces: InMemoryWorkspaces, make_turn: Callable[..., TurnWorkspace], event_log: EventRecorder
) -> None:
    settings = PrimerSettings()
    with WorkspaceMCPServer(echo_tools("grep"), name="code", clock=clock, ready_at=float("inf")) as server:
        workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
        async with make_turn(BINDING) as turn, clock.autojump():
            turn.agent_ready()

            async def ready_at_five_seconds() -> None:
                await clock.sleep(5.0, "test")
                server.ready_at = clock.now()

            with anyio.fail_after(GUARD_S):
                async with anyio.create_task_group() as group:
                    group.start_soon(ready_at_five_seconds)
                    offered = await turn.prepare_tools([])
            finished_at = clock.now()
    assert offered is not None
    # The primer pauses 1.6 s and more by now; the held step found the tools within one poll, and its
    # listing woke the primer, which found them in the cache.
    assert 5.0 <= finished_at <= 5.0 + settings.prepare_poll_interval
    [woken] = event_log.named("primer.woken")
    [succeeded] = event_log.named("primer.succeeded")
    assert woken.at == succeeded.at == finished_at


async def test_a_held_steps_listing_wakes_a_primer_whose_attempts_failed(
    clock: MockClock, workspaces: InMemoryWorkspaces, make_turn: Callable[..., TurnWorkspace], event_log: EventRecorder
) -> None:
    """As above, with a server that answers errors until it is up (an app proxy's 502s): the primer's
    failed attempts must not make it deaf to the listing that finds its agent's tools."""
    settings = PrimerSettings()
    with WorkspaceMCPServer(echo_tools("grep"), name="code", clock=clock, fail_listing=True) as server:
        workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
        async with make_turn(BINDING) as turn, clock.autojump():
            turn.agent_ready()

            async def up_at_five_seconds() -> None:
                await clock.sleep(5.0, "test")
                server.fail_listing = False

            with anyio.fail_after(GUARD_S):
                async with anyio.create_task_group() as group:
                    group.start_soon(up_at_five_seconds)
                    offered = await turn.prepare_tools([])
            finished_at = clock.now()
            attempts = [event.fields["outcome"] for event in event_log.named("primer.attempt")]
    assert offered is not None
    assert 5.0 <= finished_at <= 5.0 + settings.prepare_poll_interval
    assert attempts[:-1] == ["error"] * (len(attempts) - 1)
    [woken] = event_log.named("primer.woken")
    [succeeded] = event_log.named("primer.succeeded")
    assert woken.at == succeeded.at == finished_at


async def test_bounded_wait_gives_up_after_prepare_wait_and_only_once_per_primer(
    clock: MockClock, workspaces: InMemoryWorkspaces, make_turn: Callable[..., TurnWorkspace], event_log: EventRecorder
) -> None:
    with WorkspaceMCPServer(echo_tools("grep"), name="code", clock=clock, ready_at=float("inf")) as server:
        workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
        async with make_turn(BINDING, prepare_wait=5.0) as turn, clock.autojump():
            turn.agent_ready()
            with anyio.fail_after(GUARD_S):
                assert await turn.prepare_tools([]) is None
                first = clock.now()
                assert await turn.prepare_tools([]) is None
            second = clock.now()
    assert 5.0 <= first < 5.0 + PrimerSettings().retry_interval  # bounded, plus the attempt it made then
    assert second == first  # the next step does not wait again for the same primer
    assert len(event_log.named("prepare.waiting_for_primer")) == 1


async def test_no_wait_when_the_workspace_exposes_no_endpoint(
    clock: MockClock, workspaces: InMemoryWorkspaces, make_turn: Callable[..., TurnWorkspace]
) -> None:
    workspaces.set_agent("ws-1", "agent-1", endpoints=())
    async with make_turn(BINDING) as turn:
        turn.agent_ready()
        with anyio.fail_after(GUARD_S):
            assert await turn.prepare_tools([]) is None
        assert turn.discovery_done
        assert clock.now() == 0.0  # no time passed: nothing was waited for


async def test_a_workspace_change_ends_the_pause_early(
    clock: MockClock, workspaces: InMemoryWorkspaces, make_turn: Callable[..., TurnWorkspace], event_log: EventRecorder
) -> None:
    with WorkspaceMCPServer(echo_tools("grep"), name="code", clock=clock, ready_at=float("inf")) as server:
        endpoint = server.endpoint()
        workspaces.set_agent("ws-1", "agent-1", (endpoint,))
        async with make_turn(BINDING) as turn:
            turn.agent_ready()
            with anyio.fail_after(GUARD_S):
                await clock.wait_for_sleeper(*tags.PRIMER_RETRY)  # parked in its first pause
                server.ready_at = clock.now()
                workspaces.set_agent("ws-1", "agent-1", (endpoint,))  # e.g. Coder reports the app healthy
                report = await turn.wait_for_primer()
    assert report is not None
    assert report.end is PrimerEnd.SUCCEEDED
    assert report.attempts == 2
    assert clock.now() == 0.0  # the pause never ran out: the signal ended it
    assert event_log.named("primer.woken")


async def test_a_refused_endpoint_that_starts_accepting_ends_the_pause_early(
    clock: MockClock, workspaces: InMemoryWorkspaces, make_turn: Callable[..., TurnWorkspace], event_log: EventRecorder
) -> None:
    port = free_port()
    endpoint = McpEndpoint(server="late", url=f"http://127.0.0.1:{port}/mcp")
    workspaces.set_agent("ws-1", "agent-1", (endpoint,))
    settings = PrimerSettings()
    async with make_turn(BINDING) as turn:
        turn.agent_ready()
        with anyio.fail_after(GUARD_S):
            await clock.wait_for_sleeper(*tags.PRIMER_RETRY)  # attempt 1 was refused; pausing 0.1 s
            await clock.advance_next()  # attempt 2 at 0.1 s, refused too
            await clock.wait_for_sleeper(*tags.PRIMER_RETRY)  # now pausing 0.2 s, knocking every 0.1 s meanwhile
            with WorkspaceMCPServer(echo_tools("grep"), name="late", clock=clock, port=port):
                await clock.wait_for_sleeper("primer", "probe")
                await clock.advance(settings.probe_interval)  # the next knock is answered
                report = await turn.wait_for_primer()
    assert report is not None
    assert report.end is PrimerEnd.SUCCEEDED
    assert report.attempts == 3
    assert clock.now() == pytest.approx(0.2)  # before the 0.2 s pause (due at 0.3 s) ran out
    assert any("accepts" in event.fields["reason"] for event in event_log.named("primer.signal"))
