"""The step loop: model steps, prepare_tools before each, concurrent tool calls, errors as results."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import anyio
import pytest

from chat_mcp_primer.chatloop import StopReason, run_loop
from chat_mcp_primer.events import Event, Events
from chat_mcp_primer.model import Message, ModelResponse, Role, Tool, ToolResult, ToolSpec
from chat_mcp_primer.testing import MockClock, ScriptedModel, call

pytestmark = pytest.mark.anyio

HISTORY = (Message.user("hello"),)


class EchoTool:
    """Answers with its name and the arguments it received, and records every call."""

    def __init__(self, name: str) -> None:
        self.spec = ToolSpec(name=name, description=f"the {name} tool")
        self.calls: list[dict[str, Any]] = []

    async def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        self.calls.append(dict(arguments))
        return ToolResult(text=f"{self.spec.name}:{json.dumps(dict(arguments), sort_keys=True)}")


class FuncTool:
    """A tool whose body is an async function of the arguments."""

    def __init__(self, name: str, body: Callable[[Mapping[str, Any]], Awaitable[ToolResult]]) -> None:
        self.spec = ToolSpec(name=name, description=f"the {name} tool")
        self._body = body

    async def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        return await self._body(arguments)


def answer(text: str = "", *calls: tuple[str, str]) -> ModelResponse:
    return ModelResponse(text=text, tool_calls=tuple(call(name, arguments) for name, arguments in calls))


def tool_messages(messages: Sequence[Message]) -> list[Message]:
    return [message for message in messages if message.role is Role.TOOL]


@pytest.fixture
def events_seen() -> list[Event]:
    return []


@pytest.fixture
def events(clock: MockClock, events_seen: list[Event]) -> Events:
    return Events(clock.now, events_seen.append)


async def test_loop_completes_when_the_model_answers_without_tool_calls(events: Events) -> None:
    echo = EchoTool("echo")
    model = ScriptedModel([answer("", ("echo", '{"x": 1}')), answer("all done")])

    result = await run_loop(model, HISTORY, [echo], events=events)

    assert result.stop_reason is StopReason.COMPLETED
    assert result.steps == 2
    assert result.final_text == "all done"
    assert [message.role for message in result.messages] == [Role.ASSISTANT, Role.TOOL, Role.ASSISTANT]
    assert echo.calls == [{"x": 1}]
    assert model.requests[0].messages == HISTORY
    assert model.requests[1].messages == (*HISTORY, *result.messages[:2])


async def test_loop_with_a_plain_answer_takes_one_step_and_calls_no_tool(events: Events) -> None:
    echo = EchoTool("echo")
    model = ScriptedModel([answer("hi there")])

    result = await run_loop(model, HISTORY, [echo], events=events)

    assert result.stop_reason is StopReason.COMPLETED
    assert result.steps == 1
    assert result.messages == (Message.assistant("hi there"),)
    assert echo.calls == []


async def test_loop_stops_at_the_step_limit(events: Events, events_seen: list[Event]) -> None:
    echo = EchoTool("echo")
    model = ScriptedModel([answer("", ("echo", "{}")) for _ in range(3)])

    result = await run_loop(model, HISTORY, [echo], max_steps=3, events=events)

    assert result.stop_reason is StopReason.STEP_LIMIT
    assert result.steps == 3
    assert len(model.requests) == 3
    assert len(echo.calls) == 3
    assert [event.fields["steps"] for event in events_seen if event.name == "turn.step_limit"] == [3]


async def test_loop_rejects_a_step_cap_below_one(events: Events) -> None:
    model = ScriptedModel([answer("never asked")])
    with pytest.raises(ValueError, match="max_steps"):
        await run_loop(model, HISTORY, [], max_steps=0, events=events)
    assert model.requests == []


async def test_prepare_tools_runs_before_every_step_and_its_new_tool_is_callable_in_that_step(
    events: Events,
) -> None:
    echo = EchoTool("echo")
    late = EchoTool("late")
    model = ScriptedModel([answer("", ("echo", "{}")), answer("", ("late", '{"n": 2}')), answer("done")])
    seen_before_step: list[tuple[int, tuple[str, ...]]] = []

    async def prepare(current: Sequence[Tool]) -> Sequence[Tool] | None:
        step = len(model.requests)
        seen_before_step.append((step, tuple(tool.spec.name for tool in current)))
        if step == 1:
            return [*current, late]
        return None

    result = await run_loop(model, HISTORY, [echo], prepare_tools=prepare, events=events)

    assert seen_before_step == [(0, ("echo",)), (1, ("echo",)), (2, ("echo", "late"))]
    assert model.offered == [("echo",), ("echo", "late"), ("echo", "late")]
    assert late.calls == [{"n": 2}]
    late_result = tool_messages(result.messages)[1].result
    assert late_result is not None
    assert not late_result.is_error
    assert late_result.text == 'late:{"n": 2}'
    assert [tool.spec.name for tool in result.tools] == ["echo", "late"]


async def test_prepare_tools_returning_none_keeps_the_current_list(events: Events) -> None:
    echo = EchoTool("echo")
    extra = EchoTool("extra")
    model = ScriptedModel([answer("", ("echo", "{}")), answer("", ("extra", "{}")), answer("done")])
    prepared = 0

    async def prepare(current: Sequence[Tool]) -> Sequence[Tool] | None:
        nonlocal prepared
        prepared += 1
        return [echo, extra] if prepared == 1 else None

    result = await run_loop(model, HISTORY, [echo], prepare_tools=prepare, events=events)

    assert prepared == 3
    assert model.offered == [("echo", "extra")] * 3
    assert extra.calls == [{}]
    assert [tool.spec.name for tool in result.tools] == ["echo", "extra"]


async def test_tool_calls_of_one_step_run_concurrently_and_results_keep_the_models_order(events: Events) -> None:
    slow_started = anyio.Event()
    fast_done = anyio.Event()
    finished: list[str] = []

    async def slow(arguments: Mapping[str, Any]) -> ToolResult:
        slow_started.set()
        await fast_done.wait()  # deadlocks if the calls ran one after the other
        finished.append("slow")
        return ToolResult("slow result")

    async def fast(arguments: Mapping[str, Any]) -> ToolResult:
        await slow_started.wait()
        finished.append("fast")
        fast_done.set()
        return ToolResult("fast result")

    model = ScriptedModel([answer("", ("slow", "{}"), ("fast", "{}")), answer("done")])
    with anyio.fail_after(5):
        result = await run_loop(model, HISTORY, [FuncTool("slow", slow), FuncTool("fast", fast)], events=events)

    assert finished == ["fast", "slow"]
    calls = result.messages[0].tool_calls
    replies = tool_messages(result.messages)
    assert [message.tool_name for message in replies] == ["slow", "fast"]
    assert [message.tool_call_id for message in replies] == [calls[0].id, calls[1].id]
    assert [message.result.text for message in replies if message.result] == ["slow result", "fast result"]


async def test_a_tool_that_raises_becomes_an_error_result_the_model_sees_next_step(events: Events) -> None:
    async def broken(arguments: Mapping[str, Any]) -> ToolResult:
        raise RuntimeError("disk full")

    model = ScriptedModel([answer("", ("broken", "{}")), answer("sorry")])
    result = await run_loop(model, HISTORY, [FuncTool("broken", broken)], events=events)

    assert result.stop_reason is StopReason.COMPLETED
    seen = model.requests[1].messages[-1]
    assert seen.role is Role.TOOL
    assert seen.tool_name == "broken"
    assert seen.result is not None
    assert seen.result.is_error
    assert "RuntimeError" in seen.result.text
    assert "disk full" in seen.result.text


async def test_an_unknown_tool_name_gives_an_error_result(events: Events) -> None:
    echo = EchoTool("echo")
    model = ScriptedModel([answer("", ("nope", "{}")), answer("ok")])

    result = await run_loop(model, HISTORY, [echo], events=events)

    seen = model.requests[1].messages[-1]
    assert seen.tool_name == "nope"
    assert seen.result is not None
    assert seen.result.is_error
    assert "nope" in seen.result.text
    assert echo.calls == []
    assert result.stop_reason is StopReason.COMPLETED


@pytest.mark.parametrize("arguments", ["[1,2]", "3", "{bad", '"text"', "null", "true"])
async def test_arguments_that_are_not_a_json_object_give_an_invalid_json_error(events: Events, arguments: str) -> None:
    echo = EchoTool("echo")
    model = ScriptedModel([answer("", ("echo", arguments)), answer("ok")])

    await run_loop(model, HISTORY, [echo], events=events)

    seen = model.requests[1].messages[-1]
    assert seen.result is not None
    assert seen.result.is_error
    assert seen.result.text.startswith("invalid JSON input")
    assert echo.calls == []


@pytest.mark.parametrize("arguments", ["", "   "])
async def test_empty_arguments_mean_an_empty_object(events: Events, arguments: str) -> None:
    echo = EchoTool("echo")
    model = ScriptedModel([answer("", ("echo", arguments)), answer("ok")])

    result = await run_loop(model, HISTORY, [echo], events=events)

    assert echo.calls == [{}]
    reply = tool_messages(result.messages)[0].result
    assert reply is not None
    assert not reply.is_error


async def test_cancelling_the_caller_propagates_through_the_loop(events: Events) -> None:
    started = anyio.Event()
    log: list[str] = []

    async def hang(arguments: Mapping[str, Any]) -> ToolResult:
        started.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            log.append("tool cancelled")
            raise
        return ToolResult("unreachable")

    model = ScriptedModel([answer("", ("hang", "{}")), answer("should not be asked")])

    async def caller() -> None:
        await run_loop(model, HISTORY, [FuncTool("hang", hang)], events=events)
        log.append("loop returned")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(caller)
            await started.wait()
            group.cancel_scope.cancel()

    assert log == ["tool cancelled"]
    assert len(model.requests) == 1
