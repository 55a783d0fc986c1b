"""Streamed turns: what `ChatRuntime.stream_turn` tells its caller as it happens, in order, and what
leaving early does. A real MCP server on loopback, the scripted model streaming its text, the fake clock;
FakeCoder over loopback for the lifecycle tools' progress."""

from __future__ import annotations

import json

import anyio
import pytest

from chat_mcp_primer import (
    Chat,
    ChatRuntime,
    ModelResponse,
    StepHeld,
    StepResumed,
    ToolCall,
    ToolCallFinished,
    ToolCallStarted,
    TurnEvent,
    TurnFinished,
    TurnTextDelta,
    WorkspaceBinding,
    WorkspacePhase,
    WorkspaceProgress,
    WorkspacesFrom,
    WorkspaceToolsAdded,
)
from chat_mcp_primer.testing import (
    EventRecorder,
    FakeAgent,
    FakeCoder,
    FakeTemplate,
    FakeVersion,
    InMemoryWorkspaces,
    MockClock,
    ProvisionTool,
    ScriptedModel,
    ScriptExhaustedError,
    ServedFakeCoder,
    WorkspaceMCPServer,
    call,
    echo_tools,
)
from chat_mcp_primer.tools import CoderWorkspaces
from chat_mcp_primer.workspace.coder import CoderBackend, CoderClient

pytestmark = pytest.mark.anyio

READY = WorkspaceBinding("ws-1", build_id="build-1", agent_id="agent-1")
GUARD_S = 10  # a guard against hangs in real time (the server answers from a thread), never an assertion
# Each step of a start longer than the waits' 2 s polls, so every step is read more than once: queued 3 s,
# building 10 s, the agent connecting 4 s, its startup scripts 6 s.
SLOW = FakeVersion(
    "slow", agents=[FakeAgent(connect_seconds=4.0, startup_seconds=6.0)], queue_seconds=3.0, build_seconds=10.0
)
# What a user sees of a start that succeeds, in order, each once.
A_START = [
    WorkspacePhase.BOUND_TO_BUILD,
    WorkspacePhase.BUILD_QUEUED,
    WorkspacePhase.BUILD_RUNNING,
    WorkspacePhase.AGENT_FOUND,
    WorkspacePhase.AGENT_CONNECTING,
    WorkspacePhase.STARTUP_SCRIPTS,
    WorkspacePhase.AGENT_READY,
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def runtime_for(model: ScriptedModel, workspaces: InMemoryWorkspaces, clock: MockClock) -> ChatRuntime:
    return ChatRuntime(
        model,
        workspaces=WorkspacesFrom(workspaces, tools=lambda turn: [ProvisionTool(turn, READY)]),
        clock=clock,
        on_event=EventRecorder(),
    )


async def test_a_streamed_turn_tells_text_tool_calls_the_held_step_and_its_end_in_order(
    clock: MockClock, workspaces: InMemoryWorkspaces
) -> None:
    model = ScriptedModel(
        [
            ModelResponse(text="Setting up a workspace.", tool_calls=(call("provision"),)),
            ModelResponse(text="The docs are searchable now."),
        ],
        clock=clock,
    )
    events: list[TurnEvent] = []
    with WorkspaceMCPServer(echo_tools("search"), name="docs", clock=clock, ready_at=3.0) as server:
        workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
        runtime = runtime_for(model, workspaces, clock)
        with anyio.fail_after(GUARD_S):
            async with clock.autojump(), runtime, runtime.stream_turn(Chat(id="c", owner="alice"), "hi") as stream:
                events = [event async for event in stream]

    kinds = [type(event) for event in events]
    # The model's text streams a word at a time, step by step.
    first = "".join(e.text for e in events if isinstance(e, TurnTextDelta) and e.step == 0)
    second = "".join(e.text for e in events if isinstance(e, TurnTextDelta) and e.step == 1)
    assert (first, second) == ("Setting up a workspace.", "The docs are searchable now.")
    assert ToolCallStarted("provision") in events
    assert ToolCallFinished("provision", is_error=False) in events
    assert any(isinstance(e, WorkspaceProgress) for e in events)
    # The step after provisioning waits for the workspace's tools, and says so before it goes on.
    held = kinds.index(StepHeld)
    resumed = kinds.index(StepResumed)
    added = kinds.index(WorkspaceToolsAdded)
    first_of_step_1 = next(i for i, e in enumerate(events) if isinstance(e, TurnTextDelta) and e.step == 1)
    assert kinds.index(ToolCallFinished) < held < resumed < first_of_step_1
    assert added < first_of_step_1
    assert events[added] == WorkspaceToolsAdded(("docs__search",))
    assert events[resumed] in (StepResumed("primer ended"), StepResumed("tools listed"))  # whichever found them
    # The end comes last, with the turn's result.
    assert isinstance(events[-1], TurnFinished)
    assert events[-1].result.text == "The docs are searchable now."


async def test_leaving_a_streamed_turn_early_cancels_it(clock: MockClock, workspaces: InMemoryWorkspaces) -> None:
    model = ScriptedModel(
        [ModelResponse(text="Setting up.", tool_calls=(call("provision"),)), ModelResponse(text="never asked")],
        clock=clock,
    )
    with WorkspaceMCPServer(echo_tools("search"), name="docs", clock=clock, ready_at=60.0) as server:
        workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
        runtime = runtime_for(model, workspaces, clock)
        with anyio.fail_after(GUARD_S):
            async with clock.autojump(), runtime:
                async with runtime.stream_turn(Chat(id="c", owner="alice"), "hi") as stream:
                    async for event in stream:
                        if isinstance(event, StepHeld):
                            break  # the user closed the page while the step waits for the workspace
                assert runtime.active_turns == 0
    assert len(model.requests) == 1  # the held step never went on to ask the model again


async def test_a_turn_that_fails_raises_when_its_stream_is_left(clock: MockClock) -> None:
    model = ScriptedModel([], clock=clock)  # asked for a step it does not have
    runtime = ChatRuntime(model, clock=clock)
    with pytest.raises(ExceptionGroup) as raised:
        async with runtime.stream_turn(Chat(id="c", owner="alice"), "hi") as stream:
            assert [event async for event in stream] == []  # it ended without a TurnFinished
    assert raised.group_contains(ScriptExhaustedError)


# -- the lifecycle tools' progress, against FakeCoder ----------------------------------------------------


@pytest.fixture
def fake(clock: MockClock) -> FakeCoder:
    return FakeCoder(clock, templates=[FakeTemplate("docker", [SLOW], active_version="slow")])


async def stream_lifecycle_turn(
    clock: MockClock, coder: ServedFakeCoder, chat: Chat, tool: ToolCall
) -> list[TurnEvent]:
    """A turn whose model calls ``tool`` and then answers, streamed; every event it told, in order."""
    model = ScriptedModel([ModelResponse(tool_calls=(tool,)), ModelResponse(text="Done.")], clock=clock)
    async with CoderClient(coder.url, coder.token, clock=clock) as client:
        runtime = ChatRuntime(model, workspaces=CoderWorkspaces(CoderBackend(client)), clock=clock)
        with anyio.fail_after(GUARD_S):
            async with clock.autojump(), runtime, runtime.stream_turn(chat, "set me up") as stream:
                return [event async for event in stream]


def told_progress_before(events: list[TurnEvent], finished: ToolCallFinished) -> list[WorkspaceProgress]:
    """The workspace progress of a turn, having checked it all came before ``finished``."""
    end = events.index(finished)
    progress = [(i, event) for i, event in enumerate(events) if isinstance(event, WorkspaceProgress)]
    assert all(i < end for i, _ in progress)
    return [event for _, event in progress]


@pytest.mark.parametrize("tool", ["create_workspace", "start_workspace"])
async def test_a_streamed_start_tells_queued_running_connecting_startup_scripts_and_ready_once_each_in_order(
    clock: MockClock, fake: FakeCoder, coder: ServedFakeCoder, tool: str
) -> None:
    if tool == "create_workspace":
        chat = Chat(id="c", owner="alice")
        arguments = {"template_id": fake.template_id("docker"), "name": "dev"}
    else:
        fake.create_workspace("dev", "docker", state="stopped")
        chat = Chat(id="c", owner="alice", workspace=WorkspaceBinding(fake.workspace("dev")["id"]))
        arguments = {}

    events = await stream_lifecycle_turn(clock, coder, chat, call(tool, json.dumps(arguments)))

    progress = told_progress_before(events, ToolCallFinished(tool, is_error=False))
    assert [event.phase for event in progress] == A_START
    messages = [event.message for event in progress]
    assert messages[1:3] == ["build queued", "build running"]
    assert messages[4:] == ["agent connecting", "running startup scripts", "agent ready"]
    assert isinstance(events[-1], TurnFinished)
    assert events[-1].result.text == "Done."


async def test_a_streamed_start_whose_build_fails_tells_its_progress_up_to_the_failure(
    clock: MockClock, fake: FakeCoder, coder: ServedFakeCoder
) -> None:
    fake.create_workspace("dev", "docker", state="stopped")
    fake.fail_next_build("out of quota", "INSUFFICIENT_QUOTA", transition="start")
    chat = Chat(id="c", owner="alice", workspace=WorkspaceBinding(fake.workspace("dev")["id"]))

    events = await stream_lifecycle_turn(clock, coder, chat, call("start_workspace"))

    progress = told_progress_before(events, ToolCallFinished("start_workspace", is_error=True))
    assert [event.phase for event in progress] == A_START[:3]  # bound to the build, queued, running
    assert isinstance(events[-1], TurnFinished)
