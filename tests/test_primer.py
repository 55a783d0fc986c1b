"""The reference primer tests (chatd behaviour spec, section 8), on the fake clock, over real loopback MCP.

They run the reference strategy, whose schedule they pin exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
import anyio.lowlevel
import pytest

from chat_mcp_primer.clock import tags
from chat_mcp_primer.model import WorkspaceBinding
from chat_mcp_primer.testing import InMemoryWorkspaces, MockClock, WorkspaceMCPServer, echo_tools
from chat_mcp_primer.workspace_mcp import CacheKey, MemoryToolCache, PrimerEnd, TurnWorkspace

pytestmark = pytest.mark.anyio

BINDING = WorkspaceBinding("ws-1", build_id="build-1", agent_id="agent-1")
KEY = CacheKey("ws-1", "agent-1", "git")


async def wait_for_primer(turn: TurnWorkspace) -> None:
    """The primer runs attempts over real sockets: give it (bounded, real) time to report."""
    with anyio.fail_after(10):
        await turn.wait_for_primer()


@pytest.fixture
def server(clock: MockClock) -> WorkspaceMCPServer:
    with WorkspaceMCPServer(echo_tools("status", "diff"), name="git", clock=clock) as server:
        yield server


async def test_primer_succeeds_on_first_attempt_with_exactly_one_listing(
    server: WorkspaceMCPServer,
    workspaces: InMemoryWorkspaces,
    cache: MemoryToolCache,
    make_turn: Callable[..., TurnWorkspace],
) -> None:
    workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
    async with make_turn(BINDING, strategy="reference") as turn:
        turn.agent_ready()
        await wait_for_primer(turn)
        report = turn.primer_reports[0]
    assert report.end is PrimerEnd.SUCCEEDED
    assert report.attempts == 1
    assert server.list_calls == 1
    cached = await cache.get(KEY)
    assert cached is not None
    assert [tool.name for tool in cached] == ["status", "diff"]


async def test_primer_retries_until_tools_appear(
    clock: MockClock,
    server: WorkspaceMCPServer,
    workspaces: InMemoryWorkspaces,
    cache: MemoryToolCache,
    make_turn: Callable[..., TurnWorkspace],
) -> None:
    server.ready_at = 2.0
    workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
    async with make_turn(BINDING, strategy="reference") as turn:
        with clock.trap(*tags.PRIMER_RETRY) as trap:
            turn.agent_ready()
            pause = await trap.wait()  # the first attempt listed nothing: the primer arms its retry timer
            assert server.list_calls == 1
            assert await cache.get(KEY) is None
            pause.release()
            await clock.advance(2.0)
            await wait_for_primer(turn)
    assert turn.primer_reports[0].end is PrimerEnd.SUCCEEDED
    assert turn.primer_reports[0].attempts == 2
    assert server.list_calls >= 2
    assert await cache.get(KEY) is not None


async def test_primer_gives_up_after_budget_without_caching_empty(
    clock: MockClock,
    server: WorkspaceMCPServer,
    workspaces: InMemoryWorkspaces,
    cache: MemoryToolCache,
    make_turn: Callable[..., TurnWorkspace],
) -> None:
    server.ready_at = float("inf")  # never lists a tool
    workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
    async with make_turn(BINDING, strategy="reference") as turn:
        with clock.trap(*tags.PRIMER_RETRY) as trap:
            turn.agent_ready()
            for _ in range(15):
                pause = await trap.wait()
                pause.release()
                await clock.advance(2.0)
            await wait_for_primer(turn)
            pauses = trap.caught
    report = turn.primer_reports[0]
    assert report.end is PrimerEnd.GAVE_UP
    assert report.attempts == 16  # t = 0, 2, ..., 30
    assert pauses == 15
    assert clock.now() == 30.0
    assert server.list_calls == 16
    assert await cache.get(KEY) is None
    assert len(cache) == 0


async def test_primer_exits_on_cancellation_while_parked_in_backoff(
    clock: MockClock,
    server: WorkspaceMCPServer,
    workspaces: InMemoryWorkspaces,
    cache: MemoryToolCache,
    make_turn: Callable[..., TurnWorkspace],
    event_log: object,
) -> None:
    server.ready_at = float("inf")
    workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
    async with make_turn(BINDING, strategy="reference") as turn:
        with clock.trap(*tags.PRIMER_RETRY) as trap:
            turn.agent_ready()
            pause = await trap.wait()
            pause.release()
            while clock.peek() is None:  # parked: its retry timer is armed
                await anyio.lowlevel.checkpoint()
        # leaving the turn cancels the parked primer and waits for it
    assert turn.primer_reports == []  # it never finished: it was cancelled
    assert server.list_calls == 1
    assert await cache.get(KEY) is None
    assert clock.peek() is None  # the cancelled timer left no trace
    await server.wait_until_idle()
