"""The fault matrix, continued: faults that hit a workspace MCP server after its tools were listed (the
session terminated, the process killed mid-call, a storm of tools/list_changed)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import anyio
import anyio.to_thread
import pytest
from _harness import GUARD_S, calls, run_fault_turn
from _mcp_faults import McpFaults
from mcp.server import MCPServer
from mcp.server.mcpserver import Context

from chat_mcp_primer import ModelRequest, ModelResponse
from chat_mcp_primer.testing import EventRecorder, LoopbackServer, MockClock, WorkspaceMCPServer, call, echo_tools
from chat_mcp_primer.workspace import McpEndpoint
from chat_mcp_primer.workspace_mcp import McpMode, SessionSettings

pytestmark = pytest.mark.anyio

SEARCHED = "search called with {}"


async def test_a_session_the_server_terminated_is_redialled_and_the_call_made_once_more(clock: MockClock) -> None:
    """Older protocol era: a 404 for the session means the server forgot it and never saw the call."""
    faults = McpFaults(clock)
    with WorkspaceMCPServer(echo_tools("search"), name="docs", clock=clock, middleware=faults) as server:
        faults.status(404, method="tools/call", with_session=True, count=1)
        sessions = SessionSettings(mcp_mode="legacy")
        turn = await run_fault_turn(clock, [server.endpoint()], calls(clock, "docs__search"), sessions=sessions)
        await server.wait_until_idle()

    assert turn.result.stop_reason == "completed"
    assert turn.offered(1) == ["docs__search"]
    result = turn.result_of("docs__search")
    assert (result.text, result.is_error) == (SEARCHED, False)
    assert faults.injected["tools/call"] == 1
    assert server.call_calls == 1  # the refused call never reached the tool
    assert len(turn.events.named("session.dialing")) == 2
    turn.assert_discovery_bounded()
    turn.assert_sessions_closed()


async def test_a_404_mid_session_is_a_clear_result_and_the_next_call_redials(clock: MockClock) -> None:
    """2026 era: no session id, so a 404 cannot be told from a vanished endpoint: report it, redial next time."""
    faults = McpFaults(clock)
    with WorkspaceMCPServer(echo_tools("search"), name="docs", clock=clock, middleware=faults) as server:
        faults.status(404, method="tools/call", count=1)
        script = [ModelResponse(tool_calls=(call("docs__search"),)), *calls(clock, "docs__search")]
        turn = await run_fault_turn(clock, [server.endpoint()], script)
        await server.wait_until_idle()

    first, second = [m.result for m in turn.result.added if m.result is not None and m.tool_name == "docs__search"]
    assert first.is_error
    assert first.text == "workspace tool 'docs__search' failed: MCP error -32601 (not found)"
    assert (second.text, second.is_error) == (SEARCHED, False)
    assert len(turn.events.named("session.dialing")) == 2
    turn.assert_discovery_bounded()
    turn.assert_sessions_closed()


async def test_a_server_killed_mid_call_gives_clear_results_and_leaves_nothing_open(clock: MockClock) -> None:
    faults = McpFaults(clock)
    faults.hold(method="tools/call")
    server = WorkspaceMCPServer(echo_tools("search"), name="docs", clock=clock, middleware=faults).start()
    try:
        script = [ModelResponse(tool_calls=(call("docs__search"),)), *calls(clock, "docs__search")]
        async with anyio.create_task_group() as group:

            async def kill_mid_call() -> None:
                with anyio.fail_after(GUARD_S):
                    while faults.held == 0:  # noqa: ASYNC110 (the server counts in its own thread)
                        await anyio.sleep(0.005)
                await anyio.to_thread.run_sync(server.kill)

            group.start_soon(kill_mid_call)
            turn = await run_fault_turn(clock, [server.endpoint()], script)
    finally:
        server.stop()

    killed, refused = [m.result for m in turn.result.added if m.result is not None and m.tool_name == "docs__search"]
    assert killed.is_error
    assert killed.text.startswith("workspace tool 'docs__search' failed: ")
    assert refused.is_error
    assert refused.text == (
        "workspace connection failed: connection refused or unreachable. "
        "The workspace agent may still be starting; try again shortly."
    )
    assert turn.result.stop_reason == "completed"
    turn.assert_discovery_bounded()
    turn.assert_sessions_closed()


def storm_server(storm: int) -> MCPServer:
    """A server whose `storm` tool adds a tool, then announces a change ``storm`` times, in both eras."""
    server = MCPServer("plugins", log_level="WARNING")

    @server.tool(description="Add a tool and say so, many times.")
    async def storm_tool(ctx: Context) -> str:
        server.add_tool(lambda: "extra!", name="extra", description="The extra tool.")
        for _ in range(storm):
            with contextlib.suppress(Exception):
                await ctx.notify_tools_changed()  # 2026 era: the listen() stream
            with contextlib.suppress(Exception):
                await ctx.session.send_tool_list_changed()  # older era: a notification
        return "stormed"

    server.remove_tool("storm_tool")
    server.add_tool(storm_tool, name="storm", description="Add a tool and say so, many times.")
    return server


@contextlib.contextmanager
def serve_storm(faults: McpFaults, storm: int) -> Iterator[McpEndpoint]:
    app = lambda: faults(storm_server(storm).streamable_http_app(streamable_http_path="/mcp"))  # noqa: E731
    with LoopbackServer(app) as served:
        yield McpEndpoint(server="plugins", url=f"{served.base_url}/mcp")


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_list_changed_storm_costs_one_listing_per_step_not_one_per_notification(
    clock: MockClock, mode: McpMode
) -> None:
    storm = 200
    faults = McpFaults(clock)
    events = EventRecorder()
    listed: list[int] = []

    def storm_now(request: ModelRequest) -> ModelResponse:
        listed.append(faults.requests["tools/list"])
        return ModelResponse(tool_calls=(call("plugins__storm"),))

    async def after_the_storm(request: ModelRequest) -> ModelResponse:
        with anyio.fail_after(GUARD_S):  # the notifications arrive on a stream of their own, in real time
            while len(events.named("discovery.catalogue_changed")) < storm:  # noqa: ASYNC110
                await anyio.sleep(0.005)
        return ModelResponse(tool_calls=(call("plugins__extra"),))

    sessions = SessionSettings(mcp_mode=mode)
    with serve_storm(faults, storm) as endpoint:
        script = [storm_now, after_the_storm, *calls(clock, "plugins__extra")]
        turn = await run_fault_turn(clock, [endpoint], script, sessions=sessions, events=events)

    assert turn.result.stop_reason == "completed"
    assert "plugins__extra" in turn.offered(len(turn.model.offered) - 1)
    extra = [m.result for m in turn.result.added if m.result is not None and m.tool_name == "plugins__extra"]
    assert [result.text for result in extra] == ["extra!", "extra!"]
    steps_after_the_storm = len(turn.model.offered) - 2
    assert faults.requests["tools/list"] - listed[0] <= steps_after_the_storm
    cached = await turn.cached("plugins")
    assert cached is None or sorted(tool.name for tool in cached) == ["extra", "storm"]
    turn.assert_discovery_bounded()
    turn.assert_sessions_closed()
