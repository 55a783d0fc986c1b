"""The event vocabulary: defined once, every name used, and every event attributable on a dashboard of
many chats (a chat's events carry its id, a shared session's or listing's carry the agent)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import anyio
import pytest

from chat_mcp_primer import Chat, ChatRuntime, ModelRequest, ModelResponse, WorkspaceBinding
from chat_mcp_primer.events import AGENT_EVENTS, CHAT_EVENTS, RUNTIME_EVENTS, EventName
from chat_mcp_primer.runtime import WorkspacesFrom
from chat_mcp_primer.testing import (
    EventRecorder,
    FakeCoder,
    FakeTemplate,
    FakeVersion,
    InMemoryWorkspaces,
    MockClock,
    ProvisionTool,
    ScriptedModel,
    WorkspaceMCPServer,
    echo_tools,
    serve_fake_coder,
)
from chat_mcp_primer.testing import call as tool_call
from chat_mcp_primer.tools import CoderWorkspaces
from chat_mcp_primer.workspace.coder import CoderBackend, CoderClient

pytestmark = pytest.mark.anyio

SOURCE = Path(__file__).resolve().parent.parent / "src" / "chat_mcp_primer"
# Guards the turns against hanging in real time; never an assertion about speed.
GUARD_S = 30


class ProvisionSearchAnswer:
    """Each chat's model: provisions at its first step, searches the docs at its second, then answers."""

    async def respond(self, request: ModelRequest) -> ModelResponse:
        if request.step == 0:
            return ModelResponse(tool_calls=(tool_call("provision"),))
        if request.step == 1:
            return ModelResponse(tool_calls=(tool_call("docs__search"),))
        return ModelResponse(text="done")


def emitted_names() -> dict[str, list[str]]:
    """Every first argument of an ``emit(...)`` call in the library, as written, by file."""
    found: dict[str, list[str]] = {}
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "emit":
                found.setdefault(str(path.relative_to(SOURCE)), []).append(ast.unparse(node.args[0]))
    return found


def test_every_emitted_name_comes_from_the_vocabulary_and_every_name_in_it_is_emitted() -> None:
    written = [name for names in emitted_names().values() for name in names]
    assert written
    literal = [name for name in written if not name.startswith("EventName.")]
    assert literal == []
    used = {name.removeprefix("EventName.") for name in written}
    assert used == {member.name for member in EventName}


def test_every_event_is_about_a_chat_an_agent_or_the_runtime() -> None:
    assert set(EventName) == CHAT_EVENTS | AGENT_EVENTS | RUNTIME_EVENTS
    assert not CHAT_EVENTS & AGENT_EVENTS
    assert EventName.TURN_STARTED == "turn.started"


async def test_two_chats_on_one_agent_each_get_their_own_events_and_shared_ones_name_the_agent(
    clock: MockClock,
) -> None:
    workspaces = InMemoryWorkspaces()
    events = EventRecorder()
    ready = WorkspaceBinding("ws-1", build_id="build-1", agent_id="agent-1")
    with WorkspaceMCPServer(echo_tools("search"), name="docs", clock=clock) as server:
        workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
        runtime = ChatRuntime(
            ProvisionSearchAnswer(),
            workspaces=WorkspacesFrom(workspaces, tools=lambda turn: [ProvisionTool(turn, ready)]),
            clock=clock,
            on_event=events,
        )
        with anyio.fail_after(GUARD_S):
            async with clock.autojump(), runtime, anyio.create_task_group() as group:
                for chat_id in ("chat-1", "chat-2"):
                    group.start_soon(runtime.run_turn, Chat(id=chat_id, owner="alice"), "search the docs")
        await server.wait_until_idle()

    names = {event.name for event in events.events}
    assert {"turn.started", "step.started", "tool.called", "tools.added", "primer.started"} <= names
    assert {"discovery.server_listed", "session.dialing", "session.closed"} <= names
    for event in events.events:
        assert event.name in set(EventName), event.name
        if event.name in CHAT_EVENTS:
            assert event.fields.get("chat_id") in ("chat-1", "chat-2"), event
        if event.name in AGENT_EVENTS:
            assert event.fields.get("agent_id") == "agent-1", event
    for chat_id in ("chat-1", "chat-2"):
        own = [event.name for event in events.events if event.fields.get("chat_id") == chat_id]
        assert own[0] == "turn.started"
        assert own[-1] == "turn.ended"
        assert {"step.started", "tool.called", "tools.added", "chat.updated", "primer.started"} <= set(own)
        [searched] = [
            e
            for e in events.named("tool.called")
            if e.fields["chat_id"] == chat_id and e.fields["tool"] == "docs__search"
        ]
        assert not searched.fields["is_error"]


async def test_a_lifecycle_tools_progress_events_carry_the_chat_and_what_moved_on(clock: MockClock) -> None:
    fake = FakeCoder(clock, templates=[FakeTemplate("docker", [FakeVersion("v1")], active_version="v1")])
    events = EventRecorder()
    create = tool_call("create_workspace", json.dumps({"template_id": fake.template_id("docker"), "name": "dev"}))
    model = ScriptedModel([ModelResponse(tool_calls=(create,)), ModelResponse(text="done")], clock=clock)
    with serve_fake_coder(fake) as coder:
        async with CoderClient(coder.url, coder.token, clock=clock) as client:
            runtime = ChatRuntime(model, workspaces=CoderWorkspaces(CoderBackend(client)), clock=clock, on_event=events)
            with anyio.fail_after(GUARD_S):
                async with clock.autojump(), runtime:
                    await runtime.run_turn(Chat(id="chat-1", owner="alice"), "set me up")
        workspace = fake.workspace("dev")

    builds = events.named(EventName.WORKSPACE_BUILD_PROGRESS)
    agents = events.named(EventName.WORKSPACE_AGENT_PROGRESS)
    assert {EventName.WORKSPACE_BUILD_PROGRESS, EventName.WORKSPACE_AGENT_PROGRESS} <= CHAT_EVENTS
    for event in builds + agents:
        assert (event.fields["chat_id"], event.fields["workspace_id"]) == ("chat-1", workspace["id"])
    build_id = workspace["latest_build"]["id"]
    assert [(e.fields["build_id"], e.fields["transition"], e.fields["status"]) for e in builds] == [
        (build_id, "start", "pending"),
        (build_id, "start", "running"),
        (build_id, "start", "succeeded"),
    ]
    [agent] = workspace["latest_build"]["resources"][0]["agents"]
    assert [(e.fields["agent_id"], e.fields["status"], e.fields["lifecycle_state"]) for e in agents] == [
        (agent["id"], "connecting", "created"),
        (agent["id"], "connected", "starting"),
        (agent["id"], "connected", "ready"),
    ]
