"""prepare_tools: one cheap attempt per step, done only on success, and the two upstream gaps it closes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chat_mcp_primer.model import WorkspaceBinding
from chat_mcp_primer.testing import EventRecorder, InMemoryWorkspaces, MockClock, WorkspaceMCPServer, echo_tools
from chat_mcp_primer.workspace_mcp import PrimerEnd, TurnWorkspace

pytestmark = pytest.mark.anyio

BINDING = WorkspaceBinding("ws-1", agent_id="agent-1")


async def test_prepare_tools_retries_after_empty_and_marks_done_only_on_success(
    clock: MockClock, workspaces: InMemoryWorkspaces, make_turn: Callable[..., TurnWorkspace]
) -> None:
    with WorkspaceMCPServer(echo_tools("grep"), name="code", clock=clock, ready_at=4.0) as server:
        workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
        async with make_turn(BINDING) as turn:
            for step in range(2):  # steps at t=0 and t=2: one listing each, nothing offered
                assert await turn.prepare_tools([]) is None
                assert not turn.discovery_done
                assert server.list_calls == step + 1
                await clock.advance(2.0)
            offered = await turn.prepare_tools([])  # t=4: ready
            assert offered is not None
            assert [tool.spec.name for tool in offered] == ["code__grep"]
            assert turn.discovery_done
            assert server.list_calls == 3
            assert await turn.prepare_tools(offered) is None  # done: no further attempt
            assert server.list_calls == 3


async def test_workspace_tools_never_replace_or_shadow_builtin_tools(
    clock: MockClock, workspaces: InMemoryWorkspaces, make_turn: Callable[..., TurnWorkspace]
) -> None:
    from chat_mcp_primer.model import ToolResult, ToolSpec

    class Builtin:
        spec = ToolSpec(name="code__grep", description="a built-in that happens to look like a workspace tool")

        async def call(self, arguments: object) -> ToolResult:
            return ToolResult("builtin")

    builtin = Builtin()
    with WorkspaceMCPServer(echo_tools("grep"), name="code", clock=clock) as server:
        workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
        async with make_turn(BINDING) as turn:
            turn.reserve_names([builtin.spec.name])
            offered = await turn.prepare_tools([builtin])
    assert offered is not None
    assert offered[0] is builtin
    names = [tool.spec.name for tool in offered]
    assert len(set(names)) == 2
    assert names[1].startswith("code__grep_")


async def test_confirmed_empty_workspace_stops_retrying_and_spends_no_budget(
    clock: MockClock,
    workspaces: InMemoryWorkspaces,
    make_turn: Callable[..., TurnWorkspace],
    event_log: EventRecorder,
) -> None:
    workspaces.set_agent("ws-1", "agent-1", endpoints=())  # a template without MCP servers
    async with make_turn(BINDING) as turn:
        turn.agent_ready()
        report = await turn.wait_for_primer()
        assert report is not None
        assert report.end is PrimerEnd.CONFIRMED_EMPTY
        assert report.attempts == 1
        assert clock.now() == 0.0  # no pause, no budget
        assert await turn.prepare_tools([]) is None
        assert turn.discovery_done
        lookups = workspaces.lookups
        for _ in range(5):
            assert await turn.prepare_tools([]) is None
        assert workspaces.lookups == lookups  # no more lookups on later steps
    assert event_log.named("primer.confirmed_empty")


async def test_stopped_workspace_is_retried_on_the_next_step(
    clock: MockClock, workspaces: InMemoryWorkspaces, make_turn: Callable[..., TurnWorkspace]
) -> None:
    with WorkspaceMCPServer(echo_tools("grep"), name="code", clock=clock) as server:
        workspaces.stop("ws-1")
        async with make_turn(WorkspaceBinding("ws-1")) as turn:
            assert await turn.prepare_tools([]) is None
            assert not turn.discovery_done
            workspaces.set_agent("ws-1", "agent-2", (server.endpoint(),))  # started outside the chat
            offered = await turn.prepare_tools([])
            assert offered is not None
            assert turn.binding == WorkspaceBinding("ws-1", agent_id="agent-2")


async def test_rebinding_to_a_new_agent_replaces_the_old_agents_tools(
    clock: MockClock, workspaces: InMemoryWorkspaces, make_turn: Callable[..., TurnWorkspace]
) -> None:
    with (
        WorkspaceMCPServer(echo_tools("old_tool"), name="srv", clock=clock) as old,
        WorkspaceMCPServer(echo_tools("new_tool"), name="srv", clock=clock) as new,
    ):
        workspaces.set_agent("ws-1", "agent-1", (old.endpoint(),))
        async with make_turn(BINDING) as turn:
            first = await turn.prepare_tools([])
            assert first is not None
            assert [tool.spec.name for tool in first] == ["srv__old_tool"]
            workspaces.set_agent("ws-1", "agent-2", (new.endpoint(),))  # an update: new agent, new catalogue
            turn.bind(WorkspaceBinding("ws-1", build_id="build-2", agent_id="agent-2"))
            second = await turn.prepare_tools(first)
            assert second is not None
            assert [tool.spec.name for tool in second] == ["srv__new_tool"]
        await old.wait_until_idle()
