"""Streamed turns: what `ChatRuntime.stream_turn` tells its caller as it happens, in order, and what
leaving early does. A real MCP server on loopback, the scripted model streaming its text, the fake clock."""

from __future__ import annotations

import anyio
import pytest

from chat_mcp_primer import (
    Chat,
    ChatRuntime,
    ModelResponse,
    StepHeld,
    StepResumed,
    ToolCallFinished,
    ToolCallStarted,
    TurnEvent,
    TurnFinished,
    TurnTextDelta,
    WorkspaceBinding,
    WorkspaceProgress,
    WorkspacesFrom,
    WorkspaceToolsAdded,
)
from chat_mcp_primer.testing import (
    EventRecorder,
    InMemoryWorkspaces,
    MockClock,
    ProvisionTool,
    ScriptedModel,
    ScriptExhaustedError,
    WorkspaceMCPServer,
    call,
    echo_tools,
)

pytestmark = pytest.mark.anyio

READY = WorkspaceBinding("ws-1", build_id="build-1", agent_id="agent-1")
GUARD_S = 10  # a guard against hangs in real time (the server answers from a thread), never an assertion


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
