"""Discovery over real Streamable HTTP on loopback: uvicorn, the real `mcp` server and client."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import replace

import anyio
import mcp_types
import pytest

from chat_mcp_primer.events import Events
from chat_mcp_primer.model import WorkspaceBinding
from chat_mcp_primer.testing import (
    EventRecorder,
    InMemoryWorkspaces,
    MockClock,
    ToolDef,
    WorkspaceMCPServer,
    echo_tools,
    free_port,
)
from chat_mcp_primer.workspace import EndpointHealth, McpEndpoint
from chat_mcp_primer.workspace_mcp import (
    CacheKey,
    ListingLimits,
    MemoryToolCache,
    Outcome,
    SessionSettings,
    TurnWorkspace,
)
from chat_mcp_primer.workspace_mcp._discovery import Discovery
from chat_mcp_primer.workspace_mcp._sessions import McpSessions

pytestmark = pytest.mark.anyio

BINDING = WorkspaceBinding("ws-1", agent_id="agent-1")
# Guards against hangs in real time (the servers answer from other threads); never an assertion about speed.
GUARD_S = 10


async def test_server_that_lists_nothing_for_a_while_then_lists_tools(
    clock: MockClock, workspaces: InMemoryWorkspaces, make_turn: Callable[..., TurnWorkspace]
) -> None:
    with WorkspaceMCPServer(echo_tools("search"), name="docs", clock=clock, ready_at=5.0) as server:
        workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
        async with make_turn(BINDING) as turn:
            assert await turn.prepare_tools([]) is None  # t=0: reachable, nothing listed yet
            assert not turn.discovery_done
            await clock.advance(5.0)
            tools = await turn.prepare_tools([])
            assert tools is not None
            assert [tool.spec.name for tool in tools] == ["docs__search"]
            assert turn.discovery_done


async def test_paginated_listing_is_walked_to_the_end(
    clock: MockClock, workspaces: InMemoryWorkspaces, cache: MemoryToolCache, make_turn: Callable[..., TurnWorkspace]
) -> None:
    names = [f"tool{i}" for i in range(7)]
    with WorkspaceMCPServer(echo_tools(*names), name="big", clock=clock, page_size=3) as server:
        workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
        async with make_turn(BINDING) as turn:
            tools = await turn.prepare_tools([])
        assert tools is not None
        assert [tool.spec.name for tool in tools] == [f"big__{name}" for name in names]
        assert server.list_calls == 3  # pages of 3, 3 and 1
        cached = await cache.get(CacheKey("ws-1", "agent-1", "big"))
        assert cached is not None
        assert len(cached) == 7


async def test_cursor_loop_is_an_error_and_nothing_partial_is_cached(
    clock: MockClock,
    workspaces: InMemoryWorkspaces,
    cache: MemoryToolCache,
    make_turn: Callable[..., TurnWorkspace],
    event_log: EventRecorder,
) -> None:
    with WorkspaceMCPServer(echo_tools("a", "b"), name="loop", clock=clock, cursor_loop=True) as server:
        workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
        async with make_turn(BINDING) as turn:
            assert await turn.prepare_tools([]) is None
        assert server.list_calls == 2  # the second page repeated the cursor: stop at once
    assert len(cache) == 0
    [failure] = event_log.named("discovery.server_failed")
    assert "repeated a pagination cursor" in failure.fields["reason"]


async def test_page_cap_bounds_an_endless_listing(
    clock: MockClock, workspaces: InMemoryWorkspaces, cache: MemoryToolCache, make_turn: Callable[..., TurnWorkspace]
) -> None:
    with WorkspaceMCPServer(echo_tools(*[f"t{i}" for i in range(10)]), name="s", clock=clock, page_size=1) as server:
        workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
        async with make_turn(BINDING, max_list_pages=4) as turn:
            assert await turn.prepare_tools([]) is None
        assert server.list_calls == 4
    assert len(cache) == 0


async def test_server_that_never_answers_is_bounded_by_discovery_timeout(
    clock: MockClock, workspaces: InMemoryWorkspaces, event_log: EventRecorder
) -> None:
    limits = ListingLimits()
    events = Events(clock.now, event_log)
    with WorkspaceMCPServer(echo_tools("a"), name="stuck", clock=clock, hang_listing=True) as server:
        agent = workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
        cache = MemoryToolCache()
        async with McpSessions(clock, SessionSettings(), events) as sessions:
            discovery = Discovery(sessions, cache, clock, limits, events)
            outcome: list[Outcome] = []

            async def attempt() -> None:
                outcome.append((await discovery.attempt(agent)).outcome)

            async with anyio.create_task_group() as group:
                group.start_soon(attempt)
                with anyio.fail_after(10):
                    await clock.wait_for_sleeper("workspace-mcp", "list")  # the listing is in flight
                assert clock.peek() == limits.discovery_timeout
                await clock.advance(limits.discovery_timeout)
            assert outcome == [Outcome.ERROR]
            assert clock.now() == 35.0
    assert len(cache) == 0
    [failure] = event_log.named("discovery.server_failed")
    assert failure.fields["reason"] == "timed out"


async def test_handshakes_are_paced_and_a_hung_one_gives_up_its_place(
    clock: MockClock, workspaces: InMemoryWorkspaces, event_log: EventRecorder
) -> None:
    """With room for one handshake at a time, a second dial waits for the first; a first that hangs
    holds the place only for dial_slot_seconds, then the second goes ahead."""
    settings = SessionSettings(dial_concurrency=1)
    events = Events(clock.now, event_log)
    with (
        socket.socket() as silent,  # accepts connections (the kernel's backlog) and never answers
        WorkspaceMCPServer(echo_tools("search"), name="docs", clock=clock) as healthy,
    ):
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        hung = McpEndpoint(server="hung", url=f"http://127.0.0.1:{silent.getsockname()[1]}/mcp")
        hung_agent = workspaces.set_agent("ws-hung", "agent-hung", (hung,))
        agent = workspaces.set_agent("ws-1", "agent-1", (healthy.endpoint(),))
        async with McpSessions(clock, settings, events) as sessions:
            discovery = Discovery(sessions, MemoryToolCache(), clock, ListingLimits(), events)
            outcome: list[Outcome] = []
            listed = anyio.Event()

            async def attempt() -> None:
                outcome.append((await discovery.attempt(agent)).outcome)
                listed.set()

            async with anyio.create_task_group() as group:
                group.start_soon(discovery.attempt, hung_agent)
                with anyio.fail_after(GUARD_S):
                    await clock.wait_for_sleeper("workspace-mcp", "dial-slot")  # the hung dial holds the place
                    group.start_soon(attempt)
                    await event_log.wait_for("session.dial_queued")
                    assert healthy.list_calls == 0
                    await clock.advance(settings.dial_slot_seconds)
                    await listed.wait()
                group.cancel_scope.cancel()
    assert outcome == [Outcome.OK]
    assert healthy.list_calls == 1
    assert clock.now() == settings.dial_slot_seconds


async def test_refused_connection_is_an_error_result_not_an_exception(
    clock: MockClock, workspaces: InMemoryWorkspaces, make_turn: Callable[..., TurnWorkspace], event_log: EventRecorder
) -> None:
    endpoint = McpEndpoint(server="gone", url=f"http://127.0.0.1:{free_port()}/mcp")
    workspaces.set_agent("ws-1", "agent-1", (endpoint,))
    async with make_turn(BINDING) as turn:
        assert await turn.prepare_tools([]) is None
        assert not turn.discovery_done
        assert turn.open_sessions == 0
    [failure] = event_log.named("discovery.server_failed")
    assert failure.fields["reason"] == "connection refused or unreachable"


async def test_bad_tools_are_skipped_and_the_rest_is_offered(
    clock: MockClock, workspaces: InMemoryWorkspaces, make_turn: Callable[..., TurnWorkspace], event_log: EventRecorder
) -> None:
    tools = [
        ToolDef(name="", description="no name"),
        ToolDef(name="good"),
        ToolDef(name="good", description="a duplicate"),
        ToolDef(name="broken", input_schema={"type": "object", "properties": 5}),
        ToolDef(name="dots and spaces.v2"),
        ToolDef(name="chatty", description="x" * 2_000_000),
    ]
    with WorkspaceMCPServer(tools, name="bad", clock=clock) as server:
        workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
        async with make_turn(BINDING) as turn:
            offered = await turn.prepare_tools([])
    assert offered is not None
    assert [tool.spec.name for tool in offered] == ["bad__good", "bad__dots_and_spaces_v2", "bad__chatty"]
    assert len(offered[2].spec.description) == ListingLimits().max_description_chars
    reasons = [event.fields["reason"] for event in event_log.named("discovery.tool_skipped")]
    assert len(reasons) == 3
    assert "no name" in reasons
    assert "duplicate name" in reasons
    assert len(event_log.named("discovery.description_truncated")) == 1


async def test_workspace_tool_call_converts_content_like_the_reference(
    clock: MockClock, workspaces: InMemoryWorkspaces, make_turn: Callable[..., TurnWorkspace]
) -> None:
    def answer(name: str, arguments: dict[str, object]) -> mcp_types.CallToolResult:
        return mcp_types.CallToolResult(
            content=[
                mcp_types.TextContent(type="text", text=f"hello {arguments['who']}"),
                mcp_types.ImageContent(type="image", data="iVBORw0=", mime_type="image/png"),
                mcp_types.ResourceLink(type="resource_link", name="readme", uri="file:///README.md"),
                mcp_types.TextContent(type="text", text="bye"),
            ],
            is_error=True,
        )

    with WorkspaceMCPServer(echo_tools("greet"), name="g", clock=clock, on_call=answer) as server:
        workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
        async with make_turn(BINDING) as turn:
            offered = await turn.prepare_tools([])
            assert offered is not None
            result = await offered[0].call({"who": "world"})
    assert result.text == "hello world\n[resource link: file:///README.md]\nbye"
    assert result.is_error
    assert [a.mime_type for a in result.attachments] == ["image/png"]
    assert result.attachments[0].data.startswith(b"\x89PNG")


async def test_calling_a_tool_of_a_server_that_went_away_is_a_clear_result(
    clock: MockClock, workspaces: InMemoryWorkspaces, make_turn: Callable[..., TurnWorkspace]
) -> None:
    server = WorkspaceMCPServer(echo_tools("greet"), name="g", clock=clock).start()
    workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
    async with make_turn(BINDING) as turn:
        offered = await turn.prepare_tools([])
        assert offered is not None
        server.stop()
        result = await offered[0].call({})
    assert result.is_error
    assert result.text.startswith(("workspace tool 'g__greet' failed", "workspace connection failed"))


async def test_a_session_survives_its_endpoint_turning_healthy_but_not_a_change_of_credentials(
    clock: MockClock, event_log: EventRecorder
) -> None:
    """Backends report an app's health with its endpoint. A lookup made while the app was starting and one
    made once it is healthy name the same server: one session serves both. New headers are a new session."""
    events = Events(clock.now, event_log)
    key = CacheKey("ws-1", "agent-1", "docs")
    with WorkspaceMCPServer(echo_tools("search"), name="docs", clock=clock) as server:
        starting = replace(server.endpoint(), health=EndpointHealth.INITIALIZING)
        async with McpSessions(clock, SessionSettings(), events) as sessions:
            with anyio.fail_after(GUARD_S):
                first = await sessions.session(key, starting)
                healthy = await sessions.session(key, replace(starting, health=EndpointHealth.HEALTHY))
                assert healthy is first
                assert len(event_log.named("session.dialing")) == 1
                rekeyed = await sessions.session(key, replace(starting, headers={"Authorization": "Bearer new"}))
    assert rekeyed is not first
    assert len(event_log.named("session.dialing")) == 2
