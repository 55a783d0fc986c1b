"""`AnthropicModel` through the official SDK client, against `FakeAnthropic` on loopback speaking the Messages
API's wire format (JSON answers, streamed events, error bodies). Nothing of the SDK is mocked."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import anthropic
import pytest

from chat_mcp_primer import Chat, ChatRuntime
from chat_mcp_primer.model import (
    Attachment,
    FinishReason,
    Message,
    ModelAuthenticationError,
    ModelContextTooLongError,
    ModelError,
    ModelRateLimitedError,
    ModelRequest,
    ModelRequestError,
    ModelResponse,
    ModelUnavailableError,
    StreamingModel,
    TextDelta,
    ToolCall,
    ToolResult,
    ToolSpec,
    Usage,
)
from chat_mcp_primer.models._anthropic import DEFAULT_MAX_TOKENS, AnthropicModel
from chat_mcp_primer.testing import (
    FakeAnthropic,
    FakeAnthropicError,
    FakeAnthropicEvents,
    FakeAnthropicMessage,
    MockClock,
    anthropic_text_block,
    anthropic_tool_use_block,
    free_port,
)

pytestmark = pytest.mark.anyio

API_KEY = "sk-ant-test-not-a-real-key"
SEARCH = ToolSpec(
    name="docs__search",
    description="Search the docs.",
    input_schema={"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
)
PNG = b"\x89PNG\r\n\x1a\nnot really an image"


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as served:
        yield served


@pytest.fixture
async def client(fake: FakeAnthropic) -> AsyncIterator[anthropic.AsyncAnthropic]:
    # No retries: the error tests see the first answer, and the adapter must add none of its own.
    async with anthropic.AsyncAnthropic(api_key=API_KEY, base_url=fake.base_url, max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def model(client: anthropic.AsyncAnthropic) -> AnthropicModel:
    return AnthropicModel(client, "claude-test")


def ask(text: str = "hi", **fields: Any) -> ModelRequest:
    return ModelRequest(messages=(Message.user(text),), tools=(SEARCH,), step=0, **fields)


async def streamed(model: AnthropicModel, request: ModelRequest) -> tuple[list[str], ModelResponse]:
    items = [item async for item in model.stream(request)]
    *deltas, response = items
    assert all(isinstance(delta, TextDelta) for delta in deltas)
    assert isinstance(response, ModelResponse)
    return [delta.text for delta in deltas if isinstance(delta, TextDelta)], response


async def test_a_plain_answer_comes_back_with_its_usage_and_why_it_stopped(
    fake: FakeAnthropic, model: AnthropicModel
) -> None:
    fake.reply(FakeAnthropicMessage.text("Hello there.", input_tokens=21, output_tokens=4))
    response = await model.respond(ask(instructions="You are terse.", notes=("github offers no tools.",)))
    assert response == ModelResponse(
        text="Hello there.", usage=Usage(input_tokens=21, output_tokens=4), finish_reason=FinishReason.END_TURN
    )
    [sent] = fake.requests
    # The user's client made the call, with its key (in whichever header this SDK version sends it).
    assert API_KEY in (sent.headers.get("x-api-key"), sent.headers.get("authorization", "").removeprefix("Bearer "))
    assert sent.body["model"] == "claude-test"
    assert sent.body["max_tokens"] == DEFAULT_MAX_TOKENS
    assert sent.body["system"] == "You are terse.\n\ngithub offers no tools."
    assert sent.body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert sent.body["tools"] == [
        {"name": "docs__search", "description": "Search the docs.", "input_schema": dict(SEARCH.input_schema)}
    ]


async def test_a_request_without_instructions_or_tools_sends_neither(
    fake: FakeAnthropic, model: AnthropicModel
) -> None:
    fake.reply(FakeAnthropicMessage.text("ok"))
    await model.respond(ModelRequest(messages=(Message.user("hi"),), tools=(), step=0))
    [sent] = fake.requests
    assert "system" not in sent.body
    assert "tools" not in sent.body


async def test_parallel_tool_calls_come_back_with_their_arguments_as_json_text(
    fake: FakeAnthropic, model: AnthropicModel
) -> None:
    fake.reply(
        FakeAnthropicMessage(
            content=(
                anthropic_text_block("Searching both."),
                anthropic_tool_use_block("toolu_1", "docs__search", {"query": "install"}),
                anthropic_tool_use_block("toolu_2", "docs__search", {"query": "upgrade"}),
            ),
            stop_reason="tool_use",
        )
    )
    response = await model.respond(ask())
    assert response.text == "Searching both."
    assert response.tool_calls == (
        ToolCall("toolu_1", "docs__search", '{"query": "install"}'),
        ToolCall("toolu_2", "docs__search", '{"query": "upgrade"}'),
    )
    assert response.finish_reason is FinishReason.TOOL_CALLS


async def test_streamed_text_deltas_join_into_the_final_text(fake: FakeAnthropic, model: AnthropicModel) -> None:
    assert isinstance(model, StreamingModel)
    fake.reply(
        FakeAnthropicMessage.text("Streaming works, piece by piece.", input_tokens=30, output_tokens=8, text_piece=5)
    )
    deltas, response = await streamed(model, ask())
    assert len(deltas) > 1
    assert "".join(deltas) == response.text == "Streaming works, piece by piece."
    assert response.usage == Usage(input_tokens=30, output_tokens=8)
    assert response.finish_reason is FinishReason.END_TURN
    assert fake.requests[0].body["stream"] is True


async def test_streamed_parallel_tool_calls_are_joined_from_deltas_split_across_events(
    fake: FakeAnthropic, model: AnthropicModel
) -> None:
    fake.reply(
        FakeAnthropicMessage(
            content=(
                anthropic_text_block("Let me look."),
                anthropic_tool_use_block("toolu_1", "docs__search", {"query": "install on linux"}),
                anthropic_tool_use_block("toolu_2", "docs__search", {"query": "upgrade"}),
                anthropic_tool_use_block("toolu_3", "clock__now"),
            ),
            stop_reason="tool_use",
            json_piece=3,  # '{"q', 'uer', 'y":', ...: no delta is valid JSON on its own
        )
    )
    deltas, response = await streamed(model, ask())
    assert "".join(deltas) == "Let me look."
    assert response.tool_calls == (
        ToolCall("toolu_1", "docs__search", '{"query": "install on linux"}'),
        ToolCall("toolu_2", "docs__search", '{"query": "upgrade"}'),
        ToolCall("toolu_3", "clock__now", "{}"),
    )
    assert response.finish_reason is FinishReason.TOOL_CALLS


async def test_leaving_a_stream_early_ends_that_request_and_the_client_serves_the_next(
    fake: FakeAnthropic, model: AnthropicModel
) -> None:
    fake.reply(
        FakeAnthropicMessage.text("A long answer nobody reads to the end. " * 20), FakeAnthropicMessage.text("Next.")
    )
    async with contextlib.aclosing(model.stream(ask())) as items:
        async for item in items:
            assert item == TextDelta("A lo")
            break
    assert (await model.respond(ask())).text == "Next."


async def test_tool_results_go_back_as_one_user_turn_with_text_images_and_errors(
    fake: FakeAnthropic, model: AnthropicModel
) -> None:
    fake.reply(FakeAnthropicMessage.text("Done."))
    first = ToolCall("toolu_1", "docs__search", '{"query": "logo"}')
    second = ToolCall("toolu_2", "docs__search", '{"query": "broken"}')
    conversation = (
        Message.user("find the logo"),
        Message.assistant("Searching.", (first, second)),
        Message.tool(first, ToolResult("found it", attachments=(Attachment("image/png", PNG),))),
        Message.tool(second, ToolResult.error("the docs server is down")),
        Message.user("and?"),
    )
    await model.respond(ModelRequest(messages=conversation, tools=(SEARCH,), step=1))
    [sent] = fake.requests
    assert sent.body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "find the logo"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Searching."},
                {"type": "tool_use", "id": "toolu_1", "name": "docs__search", "input": {"query": "logo"}},
                {"type": "tool_use", "id": "toolu_2", "name": "docs__search", "input": {"query": "broken"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [
                        {"type": "text", "text": "found it"},
                        {
                            "type": "image",
                            "source": {
                                "type": "base64",
                                "media_type": "image/png",
                                "data": base64.b64encode(PNG).decode(),
                            },
                        },
                    ],
                },
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": [{"type": "text", "text": "the docs server is down"}],
                    "is_error": True,
                },
                {"type": "text", "text": "and?"},
            ],
        },
    ]


async def test_an_attachment_the_api_cannot_take_is_named_to_the_model(
    fake: FakeAnthropic, model: AnthropicModel
) -> None:
    fake.reply(FakeAnthropicMessage.text("ok"))
    call = ToolCall("toolu_1", "recorder__listen")
    conversation = (
        Message.user("listen"),
        Message.assistant(tool_calls=(call,)),
        Message.tool(call, ToolResult("", attachments=(Attachment("audio/wav", b"RIFF"),))),
    )
    await model.respond(ModelRequest(messages=conversation, tools=(), step=1))
    [result] = fake.requests[0].body["messages"][-1]["content"]
    assert result["content"] == [{"type": "text", "text": "[the tool returned audio/wav content, not shown]"}]


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [("refusal", FinishReason.REFUSAL), ("max_tokens", FinishReason.MAX_TOKENS), ("pause_turn", FinishReason.OTHER)],
)
async def test_why_the_model_stopped_is_told_in_our_words_answered_or_streamed(
    fake: FakeAnthropic, model: AnthropicModel, stop_reason: str, finish: FinishReason
) -> None:
    fake.reply(FakeAnthropicMessage.text("I can't help with that.", stop_reason=stop_reason))
    fake.reply(FakeAnthropicMessage.text("I can't help with that.", stop_reason=stop_reason))
    answered = await model.respond(ask("do something bad"))
    _, streamed_answer = await streamed(model, ask("do something bad"))
    assert answered.finish_reason is streamed_answer.finish_reason is finish
    assert answered.text == streamed_answer.text == "I can't help with that."


@pytest.mark.parametrize(
    ("error", "family"),
    [
        (FakeAnthropicError(401, "authentication_error", "invalid x-api-key"), ModelAuthenticationError),
        (
            FakeAnthropicError(403, "permission_error", "Your API key does not have permission"),
            ModelAuthenticationError,
        ),
        (
            FakeAnthropicError(400, "invalid_request_error", "prompt is too long: 215000 tokens > 200000 maximum"),
            ModelContextTooLongError,
        ),
        (FakeAnthropicError(529, "overloaded_error", "Overloaded"), ModelUnavailableError),
        (FakeAnthropicError(500, "api_error", "Internal server error"), ModelUnavailableError),
        (FakeAnthropicError(404, "not_found_error", "model: claude-nonexistent"), ModelRequestError),
    ],
)
async def test_an_error_answer_raises_its_kind_of_model_error_with_the_apis_message(
    fake: FakeAnthropic, model: AnthropicModel, error: FakeAnthropicError, family: type[ModelError]
) -> None:
    fake.reply(error, error)
    for attempt in (model.respond(ask()), streamed(model, ask())):
        with pytest.raises(family) as raised:
            await attempt
        assert type(raised.value) is family
        assert raised.value.provider == "anthropic"
        assert raised.value.status == error.status
        assert raised.value.provider_message == error.message
        assert API_KEY not in str(raised.value)
    assert len(fake.requests) == 2  # one request each: no retries added on top of the SDK's (off here)


async def test_rate_limited_says_when_to_retry(fake: FakeAnthropic, model: AnthropicModel) -> None:
    fake.reply(
        FakeAnthropicError(
            429,
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit",
            {"retry-after": "7"},
        )
    )
    with pytest.raises(ModelRateLimitedError) as raised:
        await model.respond(ask())
    assert raised.value.retry_after == 7.0
    assert raised.value.status == 429
    assert "per-minute rate limit" in raised.value.provider_message


async def test_an_error_event_in_the_middle_of_a_stream_raises_its_kind(
    fake: FakeAnthropic, model: AnthropicModel
) -> None:
    opening = FakeAnthropicMessage.text("Partial").events("msg_1")[:4]  # message_start, ping, a block and one delta
    fake.reply(
        FakeAnthropicEvents(
            [*opening, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}]
        )
    )
    seen: list[str] = []

    async def read_to_the_end() -> None:
        async for item in model.stream(ask()):
            if isinstance(item, TextDelta):
                seen.append(item.text)

    with pytest.raises(ModelUnavailableError) as raised:
        await read_to_the_end()
    assert seen == ["Part"]
    assert raised.value.provider_message == "Overloaded"
    assert raised.value.status is None  # the stream had begun on a 200: no status tells of this error


async def test_an_unreachable_api_raises_unavailable() -> None:
    async with anthropic.AsyncAnthropic(
        api_key=API_KEY, base_url=f"http://127.0.0.1:{free_port()}", max_retries=0
    ) as nowhere:
        with pytest.raises(ModelUnavailableError) as raised:
            await AnthropicModel(nowhere, "claude-test").respond(ask())
    assert raised.value.status is None


class Search:
    spec = SEARCH

    def __init__(self) -> None:
        self.queries: list[str] = []

    async def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        self.queries.append(str(arguments["query"]))
        return ToolResult(f"3 pages about {arguments['query']}")


async def test_a_whole_turn_runs_a_tool_call_through_the_adapter(
    fake: FakeAnthropic, model: AnthropicModel, clock: MockClock
) -> None:
    fake.reply(
        FakeAnthropicMessage(
            content=(anthropic_tool_use_block("toolu_1", "docs__search", {"query": "install"}),), stop_reason="tool_use"
        ),
        FakeAnthropicMessage.text("There are 3 pages about install."),
    )
    search = Search()
    runtime = ChatRuntime(model, instructions="Answer from the docs.", tools=[search], clock=clock)
    async with runtime:
        result = await runtime.run_turn(Chat(id="chat-1", owner="alice"), "how do I install?")
    assert result.text == "There are 3 pages about install."
    assert search.queries == ["install"]
    first, second = fake.requests
    assert first.body["system"] == second.body["system"] == "Answer from the docs."
    assert second.body["messages"][-1] == {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "toolu_1",
                "content": [{"type": "text", "text": "3 pages about install"}],
            }
        ],
    }
