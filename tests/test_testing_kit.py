"""The test kit a chat backend's own tests use: waiting for events, when model steps happened, provisioning
on a backend other than Coder, and the pytest plugin's fixtures in a test file of their own."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest

from chat_mcp_primer import Chat, ChatRuntime, ModelResponse, ToolResult, ToolSpec, WorkspaceBinding
from chat_mcp_primer.clock import tags as clock_tags
from chat_mcp_primer.events import Events
from chat_mcp_primer.runtime import WorkspacesFrom
from chat_mcp_primer.testing import (
    DEFAULT_EVENT_WAIT_S,
    EventNotRecordedError,
    EventRecorder,
    InMemoryWorkspaces,
    MockClock,
    ProvisionTool,
    ScriptedModel,
    WorkspaceMCPServer,
    call,
    echo_tools,
)

pytestmark = pytest.mark.anyio

READY = WorkspaceBinding("ws-1", build_id="build-1", agent_id="agent-1")
# Real time for work on other threads (loopback servers) and for the checks below to finish; a guard
# against a hang, never an assertion on speed.
GUARD_S = 30
# A pytest run in a fresh process: its start-up, imports and two loopback servers, on a loaded machine.
PYTEST_RUN_TIMEOUT_S = 300


# -- EventRecorder.wait_for ---------------------------------------------------------------------------


async def test_wait_for_returns_the_nth_event_of_a_name_once_it_is_recorded(clock: MockClock) -> None:
    recorder = EventRecorder(clock=clock)
    events = Events(clock.now, recorder)
    events.emit("tools.added", tools=1)
    found: list[int] = []

    async def second_listing() -> None:
        event = await recorder.wait_for("tools.added", count=2)
        found.append(event.fields["tools"])

    with anyio.fail_after(GUARD_S):
        async with anyio.create_task_group() as group:
            group.start_soon(second_listing)
            await clock.wait_for_sleeper(clock_tags.EVENT_RECORDER_WAIT)  # it waits: one "tools.added" is not two
            events.emit("primer.attempt")
            await anyio.wait_all_tasks_blocked()
            assert found == []
            events.emit("tools.added", tools=2)

    assert found == [2]
    assert clock.pending == ()  # the wait's deadline went with it
    assert (await recorder.wait_for("tools.added")).fields["tools"] == 1  # recorded already: at once


async def test_waiting_for_an_event_that_never_comes_fails_under_autojump_instead_of_hanging(
    clock: MockClock,
) -> None:
    recorder = EventRecorder(clock=clock)
    events = Events(clock.now, recorder)
    for attempt in (1, 2):
        events.emit("primer.attempt", attempt=attempt)

    with anyio.fail_after(GUARD_S), pytest.raises(EventNotRecordedError) as failure:
        async with clock.autojump():
            await recorder.wait_for("primer.succeeded")

    assert clock.now() == DEFAULT_EVENT_WAIT_S
    assert str(failure.value) == (
        "event 'primer.succeeded' #1 not recorded within 3600 s on the recorder's clock (0 recorded); "
        "events recorded: primer.attempt x2"
    )


async def test_waiting_for_an_event_gives_up_after_the_time_it_was_given(clock: MockClock) -> None:
    recorder = EventRecorder(clock=clock)
    Events(clock.now, recorder).emit("tools.added")

    with anyio.fail_after(GUARD_S), pytest.raises(EventNotRecordedError, match=r"'tools.added' #2 .* within 30 s"):
        async with clock.autojump():
            await recorder.wait_for("tools.added", count=2, within=30)

    assert clock.now() == 30


async def test_a_cancelled_wait_for_an_event_leaves_nothing_behind(clock: MockClock) -> None:
    recorder = EventRecorder(clock=clock)

    with anyio.fail_after(GUARD_S):
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as group:
                group.start_soon(recorder.wait_for, "primer.succeeded")
                await clock.wait_for_sleeper(clock_tags.EVENT_RECORDER_WAIT)
                scope.cancel()

    assert scope.cancelled_caught
    assert clock.pending == ()


async def test_wait_for_counts_events_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        await EventRecorder().wait_for("tools.added", count=0)


# -- ScriptedModel.request_times, ProvisionTool ----------------------------------------------------------


class Think:
    """A built-in tool that takes ``seconds`` of the test's clock."""

    spec = ToolSpec(name="think", description="Think for a while.")

    def __init__(self, clock: MockClock, seconds: float) -> None:
        self._clock = clock
        self._seconds = seconds

    async def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        await self._clock.sleep(self._seconds, "think")
        return ToolResult("thought")


async def test_the_scripted_model_records_when_each_step_was_asked_on_the_clock(clock: MockClock) -> None:
    model = ScriptedModel(
        [ModelResponse(tool_calls=(call("think"),)), ModelResponse(tool_calls=(call("think"),)), ModelResponse()],
        clock=clock,
    )
    runtime = ChatRuntime(model, tools=[Think(clock, 7.5)], clock=clock)

    with anyio.fail_after(GUARD_S):
        async with clock.autojump():
            await runtime.run_turn(Chat(id="chat-1", owner="alice"), "think twice")

    assert model.request_times == [0.0, 7.5, 15.0]


class NoticedTurn:
    """A turn seen through `ProvisionTool`'s seam: the notices it was given, in order."""

    def __init__(self) -> None:
        self.notices: list[WorkspaceBinding | str | None] = []

    def bind(self, binding: WorkspaceBinding | None) -> None:
        self.notices.append(binding)

    def agent_ready(self) -> None:
        self.notices.append("agent ready")


async def test_provision_tool_gives_the_turn_the_notices_of_a_real_provisioning_tool() -> None:
    turn = NoticedTurn()

    await ProvisionTool(turn, READY).call({})

    assert turn.notices == [WorkspaceBinding("ws-1", build_id="build-1"), READY, "agent ready"]


def test_provision_tool_needs_the_agent_it_reports_ready() -> None:
    with pytest.raises(ValueError, match="agent"):
        ProvisionTool(NoticedTurn(), WorkspaceBinding("ws-1", build_id="build-1"))


async def test_provision_tool_brings_a_workspace_s_tools_into_the_same_turn(
    clock: MockClock, workspaces: InMemoryWorkspaces
) -> None:
    model = ScriptedModel(
        [ModelResponse(tool_calls=(call("create_devbox"),)), ModelResponse(text="Ready.")], clock=clock
    )
    with WorkspaceMCPServer(echo_tools("search"), name="docs", clock=clock) as server:
        workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
        runtime = ChatRuntime(
            model,
            # The workspace takes 30 s of the test's clock to boot.
            workspaces=WorkspacesFrom(
                workspaces,
                tools=lambda turn: [
                    ProvisionTool(turn, READY, name="create_devbox", before=lambda: clock.sleep(30, "boot"))
                ],
            ),
            clock=clock,
        )
        with anyio.fail_after(GUARD_S):
            async with clock.autojump(), runtime:
                result = await runtime.run_turn(Chat(id="chat-1", owner="alice"), "set up a devbox")

    assert model.offered[0] == ("create_devbox",)
    assert "docs__search" in model.offered[1]  # the very next step
    assert model.request_times == [0.0, 30.0]
    assert result.chat.workspace == READY
    [provisioned] = [message.result for message in result.chat.messages if message.tool_name == "create_devbox"]
    assert provisioned is not None
    assert json.loads(provisioned.text) == {"created": True, "workspace_name": "ws-1"}


# -- the pytest plugin, in a test file of its own ------------------------------------------------------

PLUGIN_TESTS = """
import socket

import anyio
import httpx
import pytest

from chat_mcp_primer.events import Events
from chat_mcp_primer.testing import EventNotRecordedError, echo_tools

started = []


async def test_no_marker_needed(mock_clock):
    await mock_clock.advance(0)
    assert mock_clock.now() == 0


@pytest.mark.anyio
async def test_marked_runs_once_per_backend(mock_clock):
    assert mock_clock.now() == 0


async def test_event_recorder_waits_on_the_mock_clock(mock_clock, event_recorder):
    Events(mock_clock.now, event_recorder).emit("primer.started")
    with pytest.raises(EventNotRecordedError):
        async with mock_clock.autojump():
            await event_recorder.wait_for("primer.succeeded", within=5)
    assert mock_clock.now() == 5


def test_fake_coder_is_served(fake_coder):
    response = httpx.get(f"{fake_coder.url}/api/v2/users/me", headers=fake_coder.headers)
    assert response.json()["username"] == "alice"
    assert fake_coder.fake.clock.now() == 0


def test_workspace_mcp_server_starts_servers(workspace_mcp_server, mock_clock):
    server = workspace_mcp_server(echo_tools("search"), name="docs", ready_at=5.0)
    assert server.clock is mock_clock
    assert server.url.endswith("/mcp")
    started.append(server.port)


def test_workspace_mcp_servers_are_stopped_after_their_test():
    [port] = started
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)
"""


def run_pytest(directory: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """pytest in a fresh process in ``directory``: no conftest, only the installed plugins."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", *arguments],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=PYTEST_RUN_TIMEOUT_S,
        check=False,
    )


def outcomes(run: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """Each test id of a ``pytest -v`` run, with its outcome."""
    return dict(re.findall(r"^\S+::(\S+) (PASSED|FAILED|ERROR|SKIPPED)", run.stdout, re.MULTILINE))


def test_the_plugin_s_fixtures_work_in_a_new_test_file(tmp_path: Path) -> None:
    (tmp_path / "test_fixtures.py").write_text(textwrap.dedent(PLUGIN_TESTS))

    run = run_pytest(tmp_path, "-p", "no:randomly", "test_fixtures.py")

    assert run.returncode == 0, run.stdout + run.stderr
    assert outcomes(run) == {
        # A coroutine test taking a fixture runs on every anyio backend, marked or not.
        "test_no_marker_needed[asyncio]": "PASSED",
        "test_no_marker_needed[trio]": "PASSED",
        "test_marked_runs_once_per_backend[asyncio]": "PASSED",
        "test_marked_runs_once_per_backend[trio]": "PASSED",
        "test_event_recorder_waits_on_the_mock_clock[asyncio]": "PASSED",
        "test_event_recorder_waits_on_the_mock_clock[trio]": "PASSED",
        # A plain test taking a fixture runs once, as it is.
        "test_fake_coder_is_served": "PASSED",
        "test_workspace_mcp_server_starts_servers": "PASSED",
        "test_workspace_mcp_servers_are_stopped_after_their_test": "PASSED",
    }
