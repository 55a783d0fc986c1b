"""Discovery reports: a workspace that says when it has tried every server, read by the primed runtime.

Real MCP servers on loopback (`WorkspaceMCPServer`) publish a report at ``/discovery`` in the workspace
gateway's format, with ETags and long polls; the real hub, sessions and clients read it, on the fake clock.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import Any

import anyio
import pytest

from chat_mcp_primer import Chat, ChatRuntime, ModelResponse, WorkspaceBinding, WorkspacesFrom
from chat_mcp_primer.testing import (
    EventRecorder,
    InMemoryWorkspaces,
    MockClock,
    ScriptedModel,
    WorkspaceMCPServer,
    echo_tools,
)
from chat_mcp_primer.workspace import McpEndpoint
from chat_mcp_primer.workspace_mcp import MemoryToolCache, TurnWorkspace

pytestmark = pytest.mark.anyio

BINDING = WorkspaceBinding("ws-1", agent_id="agent-1")
# Guards against hangs in real time (the servers answer from other threads); never an assertion about speed.
GUARD_S = 10
MakeTurn = Callable[..., AbstractAsyncContextManager[TurnWorkspace]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the servers run on uvicorn threads; the client side is the same on both backends


def report(phase: str, run_id: str = "run-1", **servers: dict[str, Any]) -> dict[str, Any]:
    return {"run_id": run_id, "phase": phase, "servers": servers}


def ok(tools: int) -> dict[str, Any]:
    return {"status": "ok", "tools": tools, "reason": None}


def failed(reason: str) -> dict[str, Any]:
    return {"status": "failed", "tools": 0, "reason": reason}


EMPTY = {"status": "empty", "tools": 0, "reason": None}
STARTING = {"status": "starting", "tools": 0, "reason": None}


def report_reads(server: WorkspaceMCPServer) -> int:
    return sum(1 for request in server.seen if request.path == "/discovery")


async def test_a_complete_report_with_no_tools_is_confirmed_empty_at_once(
    clock: MockClock, workspaces: InMemoryWorkspaces, make_turn: MakeTurn, event_log: EventRecorder
) -> None:
    with WorkspaceMCPServer([], name="gateway", report=report("complete", github=failed("exited 1"), docs=EMPTY)) as gw:
        workspaces.set_agent("ws-1", "agent-1", (gw.endpoint(),))
        async with make_turn(BINDING) as turn:
            turn.agent_ready()
            with anyio.fail_after(GUARD_S):
                assert await turn.prepare_tools([]) is None  # held for the primer, which ends at once
            assert turn.discovery_done
            [report_end] = event_log.named("prepare.hold_ended")
    assert report_end.fields["reason"] == "primer ended"
    assert report_end.at == 0.0  # on the fake clock: no pause, no poll, no budget spent
    [confirmed] = event_log.named("primer.confirmed_empty")
    assert confirmed.fields["attempts"] == 1
    assert gw.list_calls == 0  # nothing was listed: the report said there is nothing to list
    assert "discovery.confirmed_empty" in event_log.names


async def test_a_pending_report_is_waited_on_without_listing_and_its_change_wakes_the_primer(
    clock: MockClock, workspaces: InMemoryWorkspaces, make_turn: MakeTurn, event_log: EventRecorder
) -> None:
    with WorkspaceMCPServer(echo_tools("search"), name="gateway", report=report("pending", docs=STARTING)) as gw:
        workspaces.set_agent("ws-1", "agent-1", (gw.endpoint(),))
        async with make_turn(BINDING) as turn:
            turn.agent_ready()
            async with clock.autojump():
                await event_log.wait_for("discovery.report_pending")
                # The primer waits on the report (a long poll), not on its schedule.
                await event_log.wait_for("primer.attempt")
                gw.report = report("complete", docs=ok(1))
                with anyio.fail_after(GUARD_S):
                    primer = await turn.wait_for_primer()
    assert primer is not None
    assert primer.end.value == "succeeded"
    names = event_log.names
    assert names.index("discovery.report_changed") < names.index("primer.succeeded")
    assert gw.list_calls == 1  # one listing, once the report was complete: none while it was pending
    # The pending attempt did not use up the primer's schedule: the change ended its wait.
    assert [e.fields["outcome"] for e in event_log.named("primer.attempt")] == ["empty", "ok"]


async def test_a_report_pending_too_long_fails_open_and_the_tools_are_listed(
    clock: MockClock, workspaces: InMemoryWorkspaces, make_turn: MakeTurn, event_log: EventRecorder
) -> None:
    with WorkspaceMCPServer(echo_tools("search"), name="gateway", report=report("pending", docs=ok(1))) as gw:
        workspaces.set_agent("ws-1", "agent-1", (gw.endpoint(),))
        async with make_turn(BINDING, report_pending_limit=5.0) as turn:
            assert await turn.prepare_tools([]) is None  # t=0: pending, nothing listed
            await clock.advance(5.0)
            tools = await turn.prepare_tools([])
    assert tools is not None
    assert [tool.spec.name for tool in tools] == ["gateway__search"]
    assert "discovery.report_fails_open" in event_log.names


async def test_a_new_run_withholds_the_tools_of_the_previous_one(
    clock: MockClock,
    workspaces: InMemoryWorkspaces,
    cache: MemoryToolCache,
    make_turn: MakeTurn,
    event_log: EventRecorder,
) -> None:
    with WorkspaceMCPServer(echo_tools("old_tool"), name="gateway", report=report("complete", docs=ok(1))) as gw:
        workspaces.set_agent("ws-1", "agent-1", (gw.endpoint(),))
        async with make_turn(BINDING) as turn:
            first = await turn.prepare_tools([])
        assert first is not None
        assert [tool.spec.name for tool in first] == ["gateway__old_tool"]
        # The gateway restarts: a new run, its servers not tried yet, and other tools to come.
        gw.tools = echo_tools("new_tool")
        gw.report = report("pending", run_id="run-2", docs=STARTING)
        async with make_turn(BINDING) as turn:
            during = await turn.prepare_tools([])
            assert during is None  # the old run's tools, cached, are not offered
            gw.report = report("complete", run_id="run-2", docs=ok(1))
            after = await turn.prepare_tools([])
    assert after is not None
    assert [tool.spec.name for tool in after] == ["gateway__new_tool"]
    assert len(event_log.named("discovery.report_new_run")) == 1


async def test_failed_and_empty_servers_reach_the_model_in_a_short_note(
    clock: MockClock, workspaces: InMemoryWorkspaces, event_log: EventRecorder
) -> None:
    hostile = "line one\nline two\x1b[31m" + "x" * 5_000  # control characters and far too long
    servers = {"search": ok(1), "github": failed("exited with status 1; restarting in 2 s"), "notes": EMPTY}
    servers["evil"] = failed(hostile)
    model = ScriptedModel([ModelResponse(text="Some tools are missing.")])
    with WorkspaceMCPServer(echo_tools("search"), name="gateway", report=report("complete", **servers)) as gw:
        workspaces.set_agent("ws-1", "agent-1", (gw.endpoint(),))
        runtime = ChatRuntime(model, workspaces=WorkspacesFrom(workspaces), clock=clock, on_event=event_log)
        async with clock.autojump(), runtime:
            with anyio.fail_after(GUARD_S):
                await runtime.run_turn(Chat(id="chat-1", owner="alice", workspace=BINDING), "what can you do?")
    [notes] = model.notes
    [note] = notes
    assert "gateway__search" in model.offered[0]
    assert "github (failed: exited with status 1; restarting in 2 s)" in note
    assert "notes (no tools)" in note
    assert "search" not in note.split(":", 1)[1]  # a server with tools is not missing
    evil = note[note.index("evil (failed: ") :]
    assert "\n" not in note
    assert "\x1b" not in note
    assert len(evil) < 300  # the reason was cut to one short line (200 characters) when the report was read


async def test_an_endpoint_without_a_report_is_asked_once_per_agent(
    clock: MockClock, workspaces: InMemoryWorkspaces, make_turn: MakeTurn, event_log: EventRecorder
) -> None:
    with WorkspaceMCPServer(echo_tools("search"), name="docs", clock=clock, ready_at=5.0) as server:
        endpoint = server.endpoint()
        server.report = None  # it names a report URL, but serves no report there (404)
        workspaces.set_agent("ws-1", "agent-1", (_with_report_url(endpoint, server),))
        async with make_turn(BINDING) as turn:
            for _ in range(3):
                assert await turn.prepare_tools([]) is None
            await clock.advance(5.0)
            tools = await turn.prepare_tools([])
    assert tools is not None
    assert report_reads(server) == 1
    [no_report] = event_log.named("discovery.no_report")
    assert no_report.fields["reason"] == "the report URL answered 404"


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"run_id": "r", "phase": "complete", "servers": {f"s{i}": EMPTY for i in range(300)}}, "more than 256"),
        ({"run_id": "r", "phase": "done", "servers": {}}, "neither 'pending' nor 'complete'"),
        ({"phase": "complete", "servers": {}}, "no run_id"),
        ({"run_id": "r", "phase": "complete", "servers": {"a": {"status": "ok", "tools": -1}}}, "no tool count"),
        ({"run_id": "r" * 70_000, "phase": "complete", "servers": {}}, "over 65536 bytes"),
    ],
)
async def test_a_report_that_is_not_one_is_ignored_and_the_tools_are_listed_as_without(
    clock: MockClock,
    workspaces: InMemoryWorkspaces,
    make_turn: MakeTurn,
    event_log: EventRecorder,
    body: dict[str, Any],
    why: str,
) -> None:
    with WorkspaceMCPServer(echo_tools("search"), name="gateway", report=body) as gw:
        workspaces.set_agent("ws-1", "agent-1", (gw.endpoint(),))
        async with make_turn(BINDING) as turn:
            tools = await turn.prepare_tools([])
    assert tools is not None
    assert [tool.spec.name for tool in tools] == ["gateway__search"]
    [no_report] = event_log.named("discovery.no_report")
    assert why in no_report.fields["reason"]


async def test_the_reference_strategy_reads_no_report(
    clock: MockClock, workspaces: InMemoryWorkspaces, make_turn: MakeTurn
) -> None:
    with WorkspaceMCPServer([], name="gateway", report=report("complete", docs=EMPTY)) as gw:
        workspaces.set_agent("ws-1", "agent-1", (gw.endpoint(),))
        async with make_turn(BINDING, strategy="reference") as turn:
            await turn.prepare_tools([])
    assert report_reads(gw) == 0
    assert gw.list_calls == 1  # it lists, as Coder's chat daemon did before reports


def _with_report_url(endpoint: McpEndpoint, server: WorkspaceMCPServer) -> McpEndpoint:
    return replace(endpoint, report_url=server.url.removesuffix("/mcp") + "/discovery")
