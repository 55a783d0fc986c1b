"""Whole turns against FakeCoder: the model provisions a workspace and is offered its MCP tools in the same turn.

The model "thinks" on the fake clock, which jumps through builds, polls and primer pauses (autojump);
FakeCoder builds and boots the agent, and the workspace MCP server becomes reachable through Coder's
app proxy some seconds after the agent is ready.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import anyio
import pytest

from chat_mcp_primer import Chat, ChatRuntime, ModelRequest, ModelResponse, WorkspaceBinding
from chat_mcp_primer.testing import (
    EventRecorder,
    FakeAgent,
    FakeCoder,
    FakeMcpServer,
    FakeTemplate,
    FakeVersion,
    MockClock,
    ScriptedModel,
    ServedFakeCoder,
    call,
    echo_tools,
)
from chat_mcp_primer.tools import CoderWorkspaces
from chat_mcp_primer.workspace.coder import CoderBackend, CoderClient
from chat_mcp_primer.workspace_mcp import PrimerSettings, Strategy

pytestmark = pytest.mark.anyio

# FakeCoder's default timings: queue 1 s, build 5 s, agent connect 2 s, startup scripts 3 s; then the
# server answers through the app proxy COLD_START s after the agent is ready.
AGENT_READY_AT = 1.0 + 5.0 + 2.0 + 3.0
COLD_START = 3.0
SERVER_UP_AT = AGENT_READY_AT + COLD_START
RETRY_INTERVAL = 2.0
MODEL_THINKS = 5.0
V1 = FakeVersion(
    "v1", agents=[FakeAgent(mcp_servers=[FakeMcpServer(tools=echo_tools("search"), cold_start_seconds=COLD_START)])]
)
V2 = FakeVersion(
    "v2", agents=[FakeAgent(mcp_servers=[FakeMcpServer(tools=echo_tools("deploy"), cold_start_seconds=COLD_START)])]
)


@pytest.fixture
def fake(clock: MockClock) -> FakeCoder:
    return FakeCoder(clock, templates=[FakeTemplate("docker", [V1, V2], active_version="v1")])


@pytest.fixture
async def backend(clock: MockClock, coder: ServedFakeCoder) -> AsyncIterator[CoderBackend]:
    async with CoderClient(coder.url, coder.token, clock=clock) as client:
        yield CoderBackend(client)


def thinking(clock: MockClock, response: ModelResponse) -> object:
    """A model step that takes MODEL_THINKS seconds of (fake) time before it answers."""

    async def step(request: ModelRequest) -> ModelResponse:
        await clock.sleep(MODEL_THINKS, "model")
        return response

    return step


def workspace_tools(model: ScriptedModel, server: str) -> list[list[str]]:
    return [[name for name in names if name.startswith(f"{server}__")] for names in model.offered]


async def run(
    clock: MockClock,
    backend: CoderBackend,
    model: ScriptedModel,
    events: EventRecorder,
    chat: Chat,
    strategy: Strategy = "primed",
) -> Chat:
    runtime = ChatRuntime(
        model,
        workspaces=CoderWorkspaces(backend),
        clock=clock,
        on_event=events,
        primer=PrimerSettings(strategy=strategy),
    )
    async with clock.autojump(), runtime:
        result = await runtime.run_turn(chat, "set me up and search the docs")
    return result.chat


async def test_primed_create_workspace_offers_the_tools_at_the_very_next_step(
    clock: MockClock, fake: FakeCoder, backend: CoderBackend, event_log: EventRecorder
) -> None:
    model = ScriptedModel(
        [
            ModelResponse(
                tool_calls=(
                    call("create_workspace", json.dumps({"template_id": fake.template_id("docker"), "name": "dev"})),
                )
            ),
            ModelResponse(tool_calls=(call("mcp__search", '{"query": "primer"}'),)),
            # The model reads the result on the fake clock: the turn cannot end (and cancel the primer)
            # while the primer is still finding, in the cache, the tools the held step's look listed.
            thinking(clock, ModelResponse(text="Found it.")),
        ]
    )
    await run(clock, backend, model, event_log, Chat(id="chat-1", owner="alice"))

    # Step 1 waited (bounded) for the primer, which caught the server as it came up.
    assert workspace_tools(model, "mcp") == [[], ["mcp__search"], ["mcp__search"]]
    [succeeded] = event_log.named("primer.succeeded")
    assert SERVER_UP_AT <= succeeded.at < SERVER_UP_AT + PrimerSettings().retry_interval
    assert succeeded.fields["attempts"] <= PrimerSettings().max_attempts
    assert event_log.named("prepare.waiting_for_primer")
    assert fake.mcp_tool_calls("dev") == 1


async def test_reference_create_workspace_offers_the_tools_at_the_first_step_after_the_primer_succeeds(
    clock: MockClock, fake: FakeCoder, backend: CoderBackend, event_log: EventRecorder
) -> None:
    model = ScriptedModel(
        [
            ModelResponse(
                tool_calls=(
                    call("create_workspace", json.dumps({"template_id": fake.template_id("docker"), "name": "dev"})),
                )
            ),
            thinking(
                clock, ModelResponse(text="Waiting for the workspace tools.", tool_calls=(call("list_templates"),))
            ),
            ModelResponse(tool_calls=(call("mcp__search", '{"query": "primer"}'),)),
            ModelResponse(text="Found it."),
        ]
    )
    chat = await run(clock, backend, model, event_log, Chat(id="chat-1", owner="alice"), "reference")

    assert workspace_tools(model, "mcp") == [[], [], ["mcp__search"], ["mcp__search"]]
    [started] = event_log.named("primer.started")
    [succeeded] = event_log.named("primer.succeeded")
    assert started.at >= AGENT_READY_AT  # launched once the readiness wait saw the agent ready
    # The first attempt after the server came up succeeded, on the reference's 2 s schedule.
    assert SERVER_UP_AT <= succeeded.at < SERVER_UP_AT + RETRY_INTERVAL
    assert succeeded.fields["attempts"] == (succeeded.at - started.at) / RETRY_INTERVAL + 1
    assert [e.fields["outcome"] for e in event_log.named("primer.attempt")][:-1] == ["error"] * (
        succeeded.fields["attempts"] - 1
    )
    assert event_log.named("discovery.cache_hit")  # step 2 was served by what the primer found
    assert fake.mcp_tool_calls("dev") == 1
    assert chat.workspace is not None
    assert chat.workspace.workspace_id == fake.workspace("dev")["id"]


async def test_start_on_an_already_running_workspace_primes_and_offers_tools_at_the_next_step(
    clock: MockClock, fake: FakeCoder, backend: CoderBackend, event_log: EventRecorder
) -> None:
    workspace_id = fake.create_workspace("dev", "docker", state="running")
    model = ScriptedModel(
        [ModelResponse(tool_calls=(call("start_workspace"),)), thinking(clock, ModelResponse(text="Ready."))]
    )
    chat = Chat(id="chat-1", owner="alice", workspace=WorkspaceBinding(workspace_id))
    await run(clock, backend, model, event_log, chat)

    # Top-of-turn discovery already finds the running server's tools: they are offered from step 0, and
    # the primer that start_workspace launches (upstream sends no notification here) succeeds at once.
    assert workspace_tools(model, "mcp") == [["mcp__search"], ["mcp__search"]]
    [succeeded] = event_log.named("primer.succeeded")
    assert succeeded.fields["attempts"] == 1
    assert fake.builds_created == 0


async def test_the_reference_does_not_prime_after_start_on_a_running_workspace(
    clock: MockClock, fake: FakeCoder, backend: CoderBackend, event_log: EventRecorder
) -> None:
    """Its upstream gap 1, reproduced by strategy="reference" for comparison."""
    workspace_id = fake.create_workspace("dev", "docker", state="running")
    model = ScriptedModel([ModelResponse(tool_calls=(call("start_workspace"),)), ModelResponse(text="Ready.")])
    chat = Chat(id="chat-1", owner="alice", workspace=WorkspaceBinding(workspace_id))
    await run(clock, backend, model, event_log, chat, "reference")
    assert not event_log.named("primer.started")


async def test_reference_update_replaces_the_old_agents_tools_with_the_new_versions(
    clock: MockClock, fake: FakeCoder, backend: CoderBackend, event_log: EventRecorder
) -> None:
    workspace_id = fake.create_workspace("dev", "docker", state="running")
    v2 = fake.version_id("docker", "v2")
    model = ScriptedModel(
        [
            ModelResponse(tool_calls=(call("update_workspace", json.dumps({"template_version_id": v2})),)),
            thinking(clock, ModelResponse(tool_calls=(call("list_templates"),))),
            ModelResponse(text="Updated."),
        ]
    )
    chat = Chat(id="chat-1", owner="alice", workspace=WorkspaceBinding(workspace_id))
    await run(clock, backend, model, event_log, chat, "reference")

    offered = [[n for n in names if n.startswith("mcp__")] for names in model.offered]
    assert offered[0] == ["mcp__search"]  # the v1 agent's tools, before the update
    assert offered[1] == []  # the new agent's server is still starting: nothing stale is offered
    assert offered[2] == ["mcp__deploy"]  # the v2 agent's tools, never the cached v1 list


async def test_primed_update_offers_the_new_versions_tools_at_the_next_step(
    clock: MockClock, fake: FakeCoder, backend: CoderBackend, event_log: EventRecorder
) -> None:
    workspace_id = fake.create_workspace("dev", "docker", state="running")
    v2 = fake.version_id("docker", "v2")
    model = ScriptedModel(
        [
            ModelResponse(tool_calls=(call("update_workspace", json.dumps({"template_version_id": v2})),)),
            ModelResponse(text="Updated."),
        ]
    )
    chat = Chat(id="chat-1", owner="alice", workspace=WorkspaceBinding(workspace_id))
    await run(clock, backend, model, event_log, chat)

    offered = [[n for n in names if n.startswith("mcp__")] for names in model.offered]
    assert offered == [["mcp__search"], ["mcp__deploy"]]


async def test_only_root_chats_are_given_the_workspace_tools(
    clock: MockClock, backend: CoderBackend, event_log: EventRecorder
) -> None:
    model = ScriptedModel([ModelResponse(text="I am a sub-agent."), ModelResponse(text="I am the root.")])
    await run(clock, backend, model, event_log, Chat(id="sub", owner="alice", parent_id="root"))
    await run(clock, backend, model, event_log, Chat(id="root", owner="alice"))
    assert model.offered[0] == ()
    assert set(model.offered[1]) == {
        "list_templates",
        "create_workspace",
        "start_workspace",
        "stop_workspace",
        "restart_workspace",
        "update_workspace",
    }


async def test_chats_waiting_on_one_workspace_share_one_watch_stream(
    clock: MockClock, fake: FakeCoder, backend: CoderBackend, event_log: EventRecorder
) -> None:
    """Many chats priming on one booting workspace open one watch connection to Coder, not one each, and
    are all woken by it when the server comes up."""
    workspace_id = fake.create_workspace("dev", "docker", state="starting")
    chats = 4
    model = ScriptedModel(
        [ModelResponse(tool_calls=(call("start_workspace"),)), thinking(clock, ModelResponse(text="Ready."))] * chats
    )
    runtime = ChatRuntime(
        model,
        workspaces=CoderWorkspaces(backend),
        clock=clock,
        on_event=event_log,
    )
    async with clock.autojump(), runtime, anyio.create_task_group() as group:
        for number in range(chats):
            chat = Chat(id=f"chat-{number}", owner="alice", workspace=WorkspaceBinding(workspace_id))
            group.start_soon(runtime.run_turn, chat, "start it and use its tools")

    assert fake.request_count("GET /api/v2/workspaces/{workspace}/watch") == 1
    assert len(event_log.named("primer.succeeded")) == chats
    assert len(event_log.named("primer.started")) == chats
