"""Whole turns through ChatRuntime: a scripted model, the fake clock, real MCP servers over loopback.

These pin the turn's structure on the reference schedule (trapped 2 s pauses, no wait before a step);
tests/test_primed.py covers what the primed strategy changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import pytest

from chat_mcp_primer import Chat, ChatRuntime, ModelRequest, ModelResponse, RuntimeClosedError, ToolResult, ToolSpec
from chat_mcp_primer.clock import tags
from chat_mcp_primer.model import WorkspaceBinding
from chat_mcp_primer.runtime import WorkspacesFrom
from chat_mcp_primer.testing import (
    EventRecorder,
    InMemoryWorkspaces,
    MockClock,
    ProvisionTool,
    ScriptedModel,
    WorkspaceMCPServer,
    call,
    echo_tools,
)
from chat_mcp_primer.workspace_mcp import MemoryToolCache, PrimerSettings

pytestmark = pytest.mark.anyio

READY = WorkspaceBinding("ws-1", build_id="build-1", agent_id="agent-1")
REFERENCE = PrimerSettings(strategy="reference")


async def wait_for_event(events: EventRecorder, name: str) -> None:
    with anyio.fail_after(10):  # real sockets: bounded real time for the other thread to answer
        await events.wait_for(name)


def runtime_for(
    model: ScriptedModel,
    clock: MockClock,
    workspaces: InMemoryWorkspaces,
    events: EventRecorder,
    cache: MemoryToolCache | None = None,
) -> ChatRuntime:
    return ChatRuntime(
        model,
        workspaces=WorkspacesFrom(workspaces, tools=lambda turn: [ProvisionTool(turn, READY)]),
        clock=clock,
        cache=cache,
        on_event=events,
        primer=REFERENCE,
    )


async def test_workspace_tools_are_offered_at_the_first_step_after_the_primer_succeeds(
    clock: MockClock, workspaces: InMemoryWorkspaces, event_log: EventRecorder
) -> None:
    with WorkspaceMCPServer(echo_tools("search"), name="docs", clock=clock, ready_at=3.0) as server:
        workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))

        with clock.trap(*tags.PRIMER_RETRY) as primer_pauses:

            class Wait:
                """The model waits a few seconds (a long tool call) while the server starts."""

                spec = ToolSpec(name="wait", description="Let time pass.")

                async def call(self, arguments: Mapping[str, Any]) -> ToolResult:
                    for _ in range(2):  # t = 0 -> 2 -> 4, one primer pause each
                        pause = await primer_pauses.wait()
                        pause.release()
                        await clock.advance(2.0)
                    await wait_for_event(event_log, "primer.succeeded")
                    return ToolResult("waited")

            def use_the_tool(request: ModelRequest) -> ModelResponse:
                return ModelResponse(tool_calls=(call("docs__search", '{"query": "primer"}'),))

            model = ScriptedModel(
                [
                    ModelResponse(tool_calls=(call("provision"),)),
                    ModelResponse(tool_calls=(call("wait"),)),
                    use_the_tool,
                    ModelResponse(text="Found it."),
                ]
            )
            runtime = ChatRuntime(
                model,
                workspaces=WorkspacesFrom(workspaces, tools=lambda turn: [ProvisionTool(turn, READY)]),
                tools=[Wait()],
                clock=clock,
                on_event=event_log,
                primer=REFERENCE,
            )
            async with runtime:
                result = await runtime.run_turn(Chat(id="chat-1", owner="alice"), "find the primer docs")

    assert model.first_step_offering(lambda name: name.startswith("docs__")) == 2
    assert model.offered[0] == ("wait", "provision")
    [succeeded] = event_log.named("primer.succeeded")
    assert succeeded.fields["attempts"] == 3  # t = 0, 2, 4; the server was ready at 3
    assert event_log.named("discovery.cache_hit")  # step 2 used what the primer found
    assert result.text == "Found it."
    tool_answers = [m.result.text for m in result.added if m.result is not None]
    assert tool_answers[-1] == "search called with {'query': 'primer'}"
    assert result.chat.workspace == READY
    assert Chat.from_dict(result.chat.to_dict()) == result.chat


async def test_top_of_turn_empty_discovery_is_retried_within_the_turn(
    clock: MockClock, workspaces: InMemoryWorkspaces, event_log: EventRecorder
) -> None:
    with WorkspaceMCPServer(echo_tools("lint"), name="ci", clock=clock, ready_at=5.0) as server:
        workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))

        async def slow_step(request: ModelRequest) -> ModelResponse:
            await clock.advance(5.0)
            return ModelResponse(text="still thinking", tool_calls=(call("noop"),))

        class Noop:
            spec = ToolSpec(name="noop", description="Does nothing.")

            async def call(self, arguments: Mapping[str, Any]) -> ToolResult:
                return ToolResult("ok")

        model = ScriptedModel([slow_step, ModelResponse(text="done")])
        runtime = ChatRuntime(
            model, workspaces=WorkspacesFrom(workspaces), tools=[Noop()], clock=clock, on_event=event_log
        )
        chat = Chat(id="chat-1", owner="alice", workspace=READY)  # already had a workspace
        async with runtime:
            await runtime.run_turn(chat, "lint it")
    assert model.offered == [("noop",), ("noop", "ci__lint")]


async def test_the_reference_does_not_retry_an_empty_top_of_turn_discovery(
    clock: MockClock, workspaces: InMemoryWorkspaces, event_log: EventRecorder
) -> None:
    """Its upstream gap 2, reproduced by strategy="reference" for comparison."""
    with WorkspaceMCPServer(echo_tools("lint"), name="ci", clock=clock, ready_at=5.0) as server:
        workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))

        async def slow_step(request: ModelRequest) -> ModelResponse:
            await clock.advance(5.0)
            return ModelResponse(tool_calls=(call("provision_nothing"),))

        model = ScriptedModel([slow_step, ModelResponse(text="done")])
        runtime = ChatRuntime(
            model, workspaces=WorkspacesFrom(workspaces), clock=clock, on_event=event_log, primer=REFERENCE
        )
        async with runtime:
            await runtime.run_turn(Chat(id="chat-1", owner="alice", workspace=READY), "lint it")
    assert model.offered == [(), ()]  # the server was ready at step 1, but the reference never looked again
    assert server.list_calls == 1


async def test_turn_end_cancels_a_parked_primer_caches_nothing_and_leaves_no_session(
    clock: MockClock, workspaces: InMemoryWorkspaces, event_log: EventRecorder
) -> None:
    cache = MemoryToolCache()
    with WorkspaceMCPServer(echo_tools("x"), name="never", clock=clock, ready_at=float("inf")) as server:
        workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))

        async def answer_once_the_primer_is_parked(request: ModelRequest) -> ModelResponse:
            with anyio.fail_after(10):
                await clock.wait_for_sleeper(*tags.PRIMER_RETRY)  # parked: its retry timer is armed
            return ModelResponse(text="The workspace is up.")

        model = ScriptedModel([ModelResponse(tool_calls=(call("provision"),)), answer_once_the_primer_is_parked])
        runtime = runtime_for(model, clock, workspaces, event_log, cache)
        async with runtime:
            result = await runtime.run_turn(Chat(id="chat-1", owner="alice"), "make me a workspace")
            assert runtime.active_turns == 0
        assert result.text == "The workspace is up."
        assert event_log.named("primer.cancelled")
        assert not event_log.named("primer.gave_up")
        assert clock.peek() is None
        assert len(cache) == 0
        await server.wait_until_idle()


async def test_aclose_cancels_a_running_turn_and_its_primer(
    clock: MockClock, workspaces: InMemoryWorkspaces, event_log: EventRecorder
) -> None:
    with WorkspaceMCPServer(echo_tools("x"), name="slow", clock=clock, ready_at=float("inf")) as server:
        workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))

        async def hang(request: ModelRequest) -> ModelResponse:
            await anyio.sleep_forever()
            raise AssertionError("unreachable")

        model = ScriptedModel([ModelResponse(tool_calls=(call("provision"),)), hang])
        runtime = runtime_for(model, clock, workspaces, event_log)
        outcome: list[BaseException] = []

        async def run() -> None:
            try:
                await runtime.run_turn(Chat(id="chat-1", owner="alice"), "go")
            except RuntimeClosedError as exc:
                outcome.append(exc)

        async with anyio.create_task_group() as group:
            group.start_soon(run)
            await wait_for_event(event_log, "primer.attempt")
            with anyio.fail_after(10):
                await runtime.aclose()
        assert len(outcome) == 1
        assert runtime.active_turns == 0
        assert event_log.named("primer.cancelled")
        await server.wait_until_idle()
        with pytest.raises(RuntimeClosedError):
            await runtime.run_turn(Chat(id="chat-2", owner="alice"), "again")
