"""Discovery shared by a runtime: one listing for many chats, sessions reused across turns and closed
when idle, and tools/list_changed picked up at the next step, in both protocol eras."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import anyio
import pytest
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from tests._turns import shared_turn

from chat_mcp_primer import Chat, ChatRuntime, ModelRequest, ModelResponse, Tool, ToolResult, ToolSpec, WorkspaceBinding
from chat_mcp_primer.events import Events
from chat_mcp_primer.runtime import WorkspacesFrom
from chat_mcp_primer.testing import (
    EventRecorder,
    InMemoryWorkspaces,
    LoopbackServer,
    MockClock,
    ScriptedModel,
    WorkspaceMCPServer,
    call,
    echo_tools,
)
from chat_mcp_primer.workspace import McpEndpoint
from chat_mcp_primer.workspace_mcp import McpMode, MemoryToolCache, PrimerSettings, SessionSettings
from chat_mcp_primer.workspace_mcp._hub import WorkspaceMcpHub

pytestmark = pytest.mark.anyio

READY = WorkspaceBinding("ws-1", agent_id="agent-1")
CHATS = 50
# Guards against hangs in real time (other threads answer); never an assertion about speed.
GUARD_S = 10


async def test_concurrent_chats_share_one_listing_per_agent_and_server(
    clock: MockClock, workspaces: InMemoryWorkspaces, event_log: EventRecorder
) -> None:
    settings = PrimerSettings()
    events = Events(clock.now, event_log)
    cache = MemoryToolCache()
    offered: list[list[str]] = []
    with WorkspaceMCPServer(echo_tools("grep", "sed"), name="code", clock=clock) as server:
        workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
        async with WorkspaceMcpHub(cache=cache, clock=clock, primer=settings, events=events) as hub:

            async def chat(number: int) -> None:
                async with shared_turn(hub, workspaces, f"chat-{number}", READY) as turn:
                    tools = await turn.prepare_tools([])
                    offered.append([tool.spec.name for tool in tools or ()])

            with anyio.fail_after(GUARD_S):
                async with anyio.create_task_group() as group:
                    for number in range(CHATS):
                        group.start_soon(chat, number)
    assert offered == [["code__grep", "code__sed"]] * CHATS
    assert server.list_calls == 1
    assert len(event_log.named("session.dialing")) == 1


async def test_a_session_is_reused_across_turns_and_closed_when_idle(
    clock: MockClock, workspaces: InMemoryWorkspaces, event_log: EventRecorder
) -> None:
    with WorkspaceMCPServer(echo_tools("lint"), name="ci", clock=clock) as server:
        workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
        model = ScriptedModel([ModelResponse(tool_calls=(call("ci__lint"),)), ModelResponse(text="ok")] * 3)
        runtime = ChatRuntime(model, workspaces=WorkspacesFrom(workspaces), clock=clock, on_event=event_log)
        chat = Chat(id="chat-1", owner="alice", workspace=READY)
        async with runtime:
            for _ in range(2):
                chat = (await runtime.run_turn(chat, "lint")).chat
            assert len(event_log.named("session.dialing")) == 1  # the second turn reused the session
            assert server.open_connections > 0
            await clock.advance(SessionSettings().session_idle_timeout + 1)
            await runtime.run_turn(chat.with_messages(()), "lint again")
            assert len(event_log.named("session.idle_closed")) == 1
            assert len(event_log.named("session.dialing")) == 2
        await server.wait_until_idle()  # aclose closed every session


async def test_a_new_turn_on_a_warm_cache_is_offered_the_same_tools_without_a_listing(
    clock: MockClock, workspaces: InMemoryWorkspaces, event_log: EventRecorder
) -> None:
    """The hot path: the tools a turn offers are built once per listing and shared by later turns (the
    same objects, the same exposed names); turns whose built-ins differ get names around their own."""
    settings = PrimerSettings()
    events = Events(clock.now, event_log)
    cache = MemoryToolCache()
    with WorkspaceMCPServer(echo_tools("grep", "noop"), name="code", clock=clock) as server:
        workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
        async with WorkspaceMcpHub(cache=cache, clock=clock, primer=settings, events=events) as hub:

            async def turn_tools(*builtins: str) -> list[Tool]:
                async with shared_turn(hub, workspaces, "chat-1", READY, builtins) as turn:
                    with anyio.fail_after(GUARD_S):
                        return list(await turn.prepare_tools([]) or ())

            first = await turn_tools("noop")
            second = await turn_tools("noop")
            clashing = await turn_tools("code__grep")
    assert [tool.spec.name for tool in first] == ["code__grep", "code__noop"]
    assert all(a is b for a, b in zip(first, second, strict=True))
    assert server.list_calls == 1
    renamed = [tool.spec.name for tool in clashing]
    assert renamed[0].startswith("code__grep_")
    assert renamed[1] == "code__noop"


def plugin_server() -> MCPServer:
    """A server whose `enable_extra` tool adds a tool and announces it, in both protocol eras."""
    server = MCPServer("plugins", log_level="WARNING")

    @server.tool(description="Enable the extra tool.")
    async def enable_extra(ctx: Context) -> str:
        server.add_tool(lambda: "extra!", name="extra", description="The extra tool.")
        with contextlib.suppress(Exception):
            await ctx.notify_tools_changed()  # 2026 era: the listen() stream
        with contextlib.suppress(Exception):
            await ctx.session.send_tool_list_changed()  # older era: a notification
        return "enabled"

    return server


@contextlib.contextmanager
def serve_plugins() -> Iterator[McpEndpoint]:
    with LoopbackServer(lambda: plugin_server().streamable_http_app(streamable_http_path="/mcp")) as served:
        yield McpEndpoint(server="plugins", url=f"{served.base_url}/mcp")


class Noop:
    spec = ToolSpec(name="noop", description="Does nothing.")

    async def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        return ToolResult("ok")


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_list_changed_replaces_the_offered_tools_at_the_next_step(
    clock: MockClock, workspaces: InMemoryWorkspaces, event_log: EventRecorder, mode: McpMode
) -> None:
    changed_during: list[int] = []

    async def react(request: ModelRequest) -> ModelResponse:
        if "plugins__extra" in request.tool_names:
            if request.messages[-1].tool_name == "plugins__extra":
                return ModelResponse(text="done")
            return ModelResponse(tool_calls=(call("plugins__extra"),))
        if not changed_during:
            with anyio.fail_after(GUARD_S):
                await event_log.wait_for("discovery.catalogue_changed")
            changed_during.append(request.step)
        return ModelResponse(tool_calls=(call("noop"),))

    model = ScriptedModel([ModelResponse(tool_calls=(call("plugins__enable_extra"),)), react, react, react])
    with serve_plugins() as endpoint:
        workspaces.set_agent("ws-1", "agent-1", (endpoint,))
        runtime = ChatRuntime(
            model,
            workspaces=WorkspacesFrom(workspaces),
            tools=[Noop()],
            clock=clock,
            on_event=event_log,
            sessions=SessionSettings(mcp_mode=mode),
        )
        async with runtime:
            result = await runtime.run_turn(Chat(id="chat-1", owner="alice", workspace=READY), "enable it")

    first_offered = model.first_step_offering(lambda name: name == "plugins__extra")
    assert first_offered is not None
    if changed_during:  # the change arrived while a step was running: offered from the next one, not mid-step
        assert first_offered == changed_during[0] + 1
    assert "plugins__extra" not in model.offered[0]
    assert [m.result.text for m in result.added if m.result is not None][-1] == "extra!"
    assert event_log.named("discovery.catalogue_changed")
