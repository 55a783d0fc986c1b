"""The `Model` seam: instructions, the provider's limits on tools, usage and finish reasons, streaming,
and the error family adapters raise."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from chat_mcp_primer import Chat, ChatRuntime
from chat_mcp_primer.chatloop import run_loop
from chat_mcp_primer.events import Event, Events
from chat_mcp_primer.model import (
    FinishReason,
    LimitedModel,
    Message,
    ModelError,
    ModelLimits,
    ModelRateLimitedError,
    ModelRequest,
    ModelResponse,
    StreamingModel,
    TextDelta,
    ToolResult,
    ToolSpec,
    Usage,
)
from chat_mcp_primer.testing import MockClock, ScriptedModel, call

pytestmark = pytest.mark.anyio


class NamedTool:
    def __init__(self, name: str) -> None:
        self.spec = ToolSpec(name=name, description=f"the {name} tool")

    async def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        return ToolResult(text=self.spec.name)


class TwoToolsAtMost(ScriptedModel):
    """A scripted model whose provider accepts two tools per request."""

    @property
    def limits(self) -> ModelLimits:
        return ModelLimits(max_tools=2)


async def test_every_request_carries_the_runtimes_instructions(clock: MockClock) -> None:
    model = ScriptedModel([ModelResponse(tool_calls=(call("echo"),)), ModelResponse(text="done")])
    runtime = ChatRuntime(model, instructions="You are terse.", tools=[NamedTool("echo")], clock=clock)
    await runtime.run_turn(Chat(id="chat-1", owner="alice"), "hi")
    assert [request.instructions for request in model.requests] == ["You are terse.", "You are terse."]


async def test_a_model_with_a_tool_limit_is_offered_the_first_tools_and_the_rest_are_reported(
    clock: MockClock,
) -> None:
    seen: list[Event] = []
    model = TwoToolsAtMost([ModelResponse(tool_calls=(call("third"),)), ModelResponse(text="done")])
    assert isinstance(model, LimitedModel)
    tools = [NamedTool("first"), NamedTool("second"), NamedTool("third")]
    result = await run_loop(model, (Message.user("hi"),), tools, events=Events(clock.now, seen.append))
    assert model.offered[0] == ("first", "second")
    [dropped] = [event for event in seen if event.name == "model.tools_dropped"]
    assert dropped.fields == {"offered": 2, "dropped": 1}
    # A tool left out cannot be called at that step: the model is told so.
    [tool_message] = [m for m in result.messages if m.result is not None]
    assert tool_message.result is not None
    assert tool_message.result.is_error


async def test_a_scripted_model_streams_its_answer_a_word_at_a_time_then_the_whole_response() -> None:
    response = ModelResponse(
        text="Two words.", usage=Usage(input_tokens=12, output_tokens=3), finish_reason=FinishReason.END_TURN
    )
    model = ScriptedModel([response])
    assert isinstance(model, StreamingModel)
    items = [item async for item in model.stream(ModelRequest(messages=(), tools=(), step=0))]
    assert items == [TextDelta("Two "), TextDelta("words."), response]
    assert "".join(item.text for item in items if isinstance(item, TextDelta)) == response.text


def test_model_errors_keep_the_providers_message_and_status() -> None:
    error = ModelRateLimitedError("openai", "Rate limit reached for requests", status=429, retry_after=2.0)
    assert isinstance(error, ModelError)
    assert str(error) == "openai (429): Rate limit reached for requests"
    assert error.retry_after == 2.0
    assert error.provider_message == "Rate limit reached for requests"
