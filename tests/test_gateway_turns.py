"""Whole turns through the workspace gateway: `FakeCoder`'s agent app is a real ``chat-mcp-primer gateway``
process, running real stdio MCP servers from a ``.mcp.json``, behind the fake's app proxy over loopback.

The runtime reads the gateway's discovery report: it waits on a pending one (a held read, which keeps the
fake clock still while the gateway works in real time), confirms an empty one at once, tells the model
which servers failed, and never offers what a previous run of the gateway listed.
"""

from __future__ import annotations

import contextlib
import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from tests._gateway_process import GUARD_SECONDS, command_report_when, start_gateway, stdio, write_config

from chat_mcp_primer import Chat, ChatRuntime, ModelRequest, ModelResponse
from chat_mcp_primer.testing import (
    EventRecorder,
    FakeAgent,
    FakeCoder,
    FakeMcpServer,
    FakeTemplate,
    FakeVersion,
    MockClock,
    ScriptedModel,
    call,
    free_port,
    serve_fake_coder,
)
from chat_mcp_primer.tools import CoderWorkspaces
from chat_mcp_primer.workspace.coder import CoderBackend, CoderClient

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the fake and the gateway serve from threads and processes of their own


@contextlib.contextmanager
def gateway(config: Path, port: int) -> Iterator[None]:
    """The gateway command on ``port``, stopped (SIGTERM, every server closed) when the block ends."""
    process = start_gateway(config, port)
    try:
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=GUARD_SECONDS)
        finally:
            process.kill()
            process.communicate()


async def listening(port: int) -> dict[str, Any]:
    return await command_report_when(port, lambda report: True)


def fake_with_gateway(clock: MockClock, port: int) -> FakeCoder:
    app = FakeMcpServer(cold_start_seconds=0.0, upstream=f"http://127.0.0.1:{port}")
    version = FakeVersion("v1", agents=[FakeAgent(mcp_servers=[app])])
    return FakeCoder(clock, templates=[FakeTemplate("docker", [version])])


def create_then(fake: FakeCoder, *after: ModelResponse) -> list[ModelResponse]:
    create = call("create_workspace", json.dumps({"template_id": fake.template_id("docker"), "name": "dev"}))
    return [ModelResponse(tool_calls=(create,)), *after]


async def run_turns(
    fake: FakeCoder, clock: MockClock, event_log: EventRecorder, model: ScriptedModel, turns: int = 1
) -> list[Chat]:
    chats = [Chat(id="chat-1", owner="alice")]
    with serve_fake_coder(fake) as coder:
        async with CoderClient(coder.url, coder.token, clock=clock) as client:
            runtime = ChatRuntime(
                model, workspaces=CoderWorkspaces(CoderBackend(client)), clock=clock, on_event=event_log
            )
            async with clock.autojump(), runtime:
                for _ in range(turns):
                    with anyio.fail_after(GUARD_SECONDS):
                        result = await runtime.run_turn(chats[-1], "go on")
                    chats.append(result.chat)
    return chats[1:]


async def test_the_tools_reach_the_first_step_after_the_report_is_complete(
    tmp_path: Path, clock: MockClock, event_log: EventRecorder
) -> None:
    # The server takes a while to come up: the gateway's report stays pending meanwhile.
    config = write_config(tmp_path / ".mcp.json", {"docs": stdio("--tools", "search", "--start-delay", "2")})
    port = free_port()
    fake = fake_with_gateway(clock, port)
    model = ScriptedModel(create_then(fake, ModelResponse(text="Ready.")), clock=clock)
    with gateway(config, port):
        await listening(port)
        await run_turns(fake, clock, event_log, model)

    assert "mcp__docs__search" not in model.offered[0]
    assert "mcp__docs__search" in model.offered[1]  # the very step after the workspace came up
    names = event_log.names
    # Whatever was seen pending was waited on, and the tools came after: no listing failed meanwhile.
    pending = [index for index, name in enumerate(names) if name == "discovery.report_pending"]
    assert all(index < names.index("tools.added") for index in pending)
    assert event_log.named("discovery.server_failed") == []
    assert [e.fields["reason"] for e in event_log.named("prepare.hold_ended")] == ["primer ended"]


async def test_an_empty_config_is_confirmed_empty_with_no_retries_and_no_time_held(
    tmp_path: Path, clock: MockClock, event_log: EventRecorder
) -> None:
    config = write_config(tmp_path / ".mcp.json", {})
    port = free_port()
    fake = fake_with_gateway(clock, port)
    model = ScriptedModel(create_then(fake, ModelResponse(text="No workspace tools.")), clock=clock)
    with gateway(config, port):
        await listening(port)
        await run_turns(fake, clock, event_log, model)

    [started] = event_log.named("primer.started")
    [confirmed] = event_log.named("primer.confirmed_empty")
    assert confirmed.fields["attempts"] == 1  # no retry
    assert confirmed.at == started.at  # no pause, no budget: the report said it all
    assert all(hold.at == started.at for hold in event_log.named("prepare.hold_ended"))  # held for no time
    assert "discovery.reported_empty" in event_log.names
    assert event_log.named("discovery.server_listed") == []  # nothing to list, nothing listed
    assert not any(name.startswith("mcp__") for name in model.offered[1])


async def test_a_failing_server_shows_in_the_models_note(
    tmp_path: Path, clock: MockClock, event_log: EventRecorder
) -> None:
    servers = {"docs": stdio("--tools", "search"), "jira": stdio("--fail-start", "JIRA_URL is not set")}
    config = write_config(tmp_path / ".mcp.json", servers)
    port = free_port()
    fake = fake_with_gateway(clock, port)
    model = ScriptedModel(create_then(fake, ModelResponse(text="Jira is not available.")), clock=clock)
    with gateway(config, port):
        await command_report_when(port, lambda report: report.get("phase") == "complete")
        await run_turns(fake, clock, event_log, model)

    assert "mcp__docs__search" in model.offered[1]
    [note] = model.notes[1]
    assert "jira (failed: " in note
    assert "JIRA_URL is not set" in note
    assert "docs" not in note  # a server with tools is not missing


async def test_a_restarted_gateway_never_offers_the_tools_of_its_previous_run(
    tmp_path: Path, clock: MockClock, event_log: EventRecorder
) -> None:
    config = write_config(tmp_path / ".mcp.json", {"docs": stdio("--tools", "old")})
    port = free_port()
    fake = fake_with_gateway(clock, port)

    def until_new_tools(request: ModelRequest) -> ModelResponse:
        if "mcp__docs__new" in request.tool_names:
            return ModelResponse(text="Found the new tool.")
        return ModelResponse(tool_calls=(call("list_templates"),))  # keep working until it appears

    first_turn = create_then(fake, ModelResponse(text="Ready."))
    model = ScriptedModel([*first_turn, *[until_new_tools] * 20], clock=clock)
    with serve_fake_coder(fake) as coder:
        async with CoderClient(coder.url, coder.token, clock=clock) as client:
            runtime = ChatRuntime(
                model, workspaces=CoderWorkspaces(CoderBackend(client)), clock=clock, on_event=event_log
            )
            async with clock.autojump(), runtime:
                with gateway(config, port):
                    await command_report_when(port, lambda report: report.get("phase") == "complete")
                    with anyio.fail_after(GUARD_SECONDS):
                        first = await runtime.run_turn(Chat(id="chat-1", owner="alice"), "set up")
                assert "mcp__docs__old" in model.offered[1]
                first_steps = len(model.requests)
                # The gateway restarts with other servers: a new run, whose tools differ.
                write_config(config, {"docs": stdio("--tools", "new")})
                with gateway(config, port):
                    await command_report_when(port, lambda report: report.get("phase") == "complete")
                    with anyio.fail_after(GUARD_SECONDS):
                        await runtime.run_turn(first.chat, "and now?")

    second_turn = model.offered[first_steps:]
    assert not any("mcp__docs__old" in offered for offered in second_turn)
    assert "mcp__docs__new" in second_turn[-1]
