"""One wake-up bus per agent: feeds shared by their demanders and stopped with the last, nothing kept for
an agent nobody listens to, and a turn's primer woken by whatever its agent's bus publishes."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import anyio
import pytest

from chat_mcp_primer._tasks import BackgroundTasks
from chat_mcp_primer.model import WorkspaceBinding
from chat_mcp_primer.testing import EventRecorder, InMemoryWorkspaces, MockClock, WorkspaceMCPServer, echo_tools
from chat_mcp_primer.workspace_mcp import PrimerEnd, PrimerSettings, SessionSettings, TurnWorkspace
from chat_mcp_primer.workspace_mcp._bus import AgentBuses, Publish, Wake, WakeKind

pytestmark = pytest.mark.anyio

AGENT = ("ws-1", "agent-1")
BINDING = WorkspaceBinding("ws-1", agent_id="agent-1")
# A guard against a hang in real time, never an assertion about speed.
GUARD_S = 10


async def test_a_feed_runs_once_for_all_its_demanders_and_stops_with_the_last(clock: MockClock) -> None:
    started = 0
    stopped = anyio.Event()

    async def feed(publish: Publish) -> None:
        nonlocal started
        started += 1
        try:
            await anyio.sleep_forever()
        finally:
            stopped.set()

    async with BackgroundTasks() as tasks:
        buses = AgentBuses(tasks)
        bus = buses.bus(AGENT)
        first = bus.demand("watch", feed)
        second = bus.demand("watch", feed)
        await anyio.wait_all_tasks_blocked()
        assert started == 1
        first()
        first()  # withdrawing twice counts once
        await anyio.wait_all_tasks_blocked()
        assert not stopped.is_set()
        second()
        with anyio.fail_after(GUARD_S):
            await stopped.wait()
        assert len(buses) == 0  # nothing kept for an agent nobody listens to


async def test_a_feed_that_found_what_it_looked_for_starts_again_for_the_next_demand(clock: MockClock) -> None:
    heard: list[Wake] = []
    runs = 0

    async def feed(publish: Publish) -> None:
        nonlocal runs
        runs += 1
        publish(Wake(WakeKind.ENDPOINT_ACCEPTS, f"docs accepts ({runs})"))

    async with BackgroundTasks() as tasks:
        buses = AgentBuses(tasks)
        unsubscribe = buses.bus(AGENT).subscribe(heard.append)
        withdraw = buses.bus(AGENT).demand("probe", feed)
        await anyio.wait_all_tasks_blocked()
        withdraw()  # after it ended on its own: harmless
        buses.bus(AGENT).demand("probe", feed)
        await anyio.wait_all_tasks_blocked()
        unsubscribe()
    assert [wake.detail for wake in heard] == ["docs accepts (1)", "docs accepts (2)"]


async def test_publishing_to_an_agent_nobody_hears_keeps_nothing(clock: MockClock) -> None:
    async with BackgroundTasks() as tasks:
        buses = AgentBuses(tasks)
        buses.publish(AGENT, Wake(WakeKind.SERVER_LISTED, "docs"))
        assert len(buses) == 0


async def test_another_chats_listing_wakes_a_pausing_primer_of_the_same_agent_through_the_bus(
    clock: MockClock,
    workspaces: InMemoryWorkspaces,
    make_turn: Callable[..., AbstractAsyncContextManager[TurnWorkspace]],
    event_log: EventRecorder,
) -> None:
    """The primer pauses for its long retry pause; a listing published on its agent's bus (as another chat's
    listing is) ends the pause at once, and the next attempt finds the tools."""
    with WorkspaceMCPServer(echo_tools("search"), name="docs", clock=clock, ready_at=10.0) as server:
        workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
        settings = {"first_pause": 40.0, "retry_interval": 40.0, "max_wait": 100.0}
        async with make_turn(BINDING, **settings) as turn:
            turn.agent_ready()
            with anyio.fail_after(GUARD_S):
                await event_log.wait_for("primer.attempt")
                await clock.wait_for_sleeper("primer", "retry")
            await clock.advance(10.0)  # the server lists now; the primer's pause lasts until t=40
            turn._hub.buses.publish(AGENT, Wake(WakeKind.SERVER_LISTED, "docs"))
            with anyio.fail_after(GUARD_S):
                report = await turn.wait_for_primer()
    assert report is not None
    assert report.end is PrimerEnd.SUCCEEDED
    assert event_log.named("primer.woken")
    assert report.attempts == 2
    assert clock.now() == 10.0  # woken, not at the end of its pause


def test_settings_refuse_values_that_cannot_work_and_say_which() -> None:
    with pytest.raises(ValueError, match=r"PrimerSettings\.retry_interval must be positive"):
        PrimerSettings(retry_interval=0)
    with pytest.raises(ValueError, match=r"PrimerSettings\.max_wait must not be negative"):
        PrimerSettings(max_wait=-1)
    with pytest.raises(ValueError, match=r"SessionSettings\.dial_concurrency must be at least 1"):
        SessionSettings(dial_concurrency=0)
