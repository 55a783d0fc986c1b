"""The OpenAI adapters against `FakeOpenAI`, OpenAI's wire format on loopback, through the official SDK client:
answers, streamed deltas, parallel tool calls split across chunks, tool results, refusals, usage, finish
reasons, error bodies mapped to the `ModelError` family, and a whole turn of `ChatRuntime`."""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from typing import Any

import openai
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
    TextDelta,
    ToolCall,
    ToolResult,
    ToolSpec,
    Usage,
)
from chat_mcp_primer.models import OpenAIChatModel, OpenAIResponsesModel
from chat_mcp_primer.testing import (
    FakeOpenAI,
    FakeOpenAIAnswer,
    FakeOpenAIBrokenStream,
    FakeOpenAIFailedResponse,
    FakeOpenAIFailure,
    MockClock,
)

pytestmark = pytest.mark.anyio

KEY = "sk-test-not-a-real-key"
OpenAIModel = OpenAIChatModel | OpenAIResponsesModel
WEATHER = ToolSpec(
    name="weather",
    description="The weather in a city",
    input_schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
PARALLEL_CALLS = (
    ToolCall(id="call_1", name="weather", arguments='{"city": "Paris, France"}'),
    ToolCall(id="call_2", name="weather", arguments='{"city": "Lyon, France"}'),
)


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as served:
        yield served


@pytest.fixture
async def client(fake: FakeOpenAI) -> AsyncIterator[openai.AsyncOpenAI]:
    """A client of the user's own making; no SDK retries, so error tests are quick."""
    async with openai.AsyncOpenAI(api_key=KEY, base_url=fake.base_url, max_retries=0) as made:
        yield made


@pytest.fixture(params=["chat", "responses"])
def model(request: pytest.FixtureRequest, client: openai.AsyncOpenAI) -> OpenAIModel:
    """Each adapter, over the user's client."""
    if request.param == "chat":
        return OpenAIChatModel(client, "gpt-test")
    return OpenAIResponsesModel(client, "gpt-test")


def ask(*messages: Message, tools: tuple[ToolSpec, ...] = (WEATHER,)) -> ModelRequest:
    return ModelRequest(
        messages=messages or (Message.user("Hi"),),
        tools=tools,
        step=1,
        notes=("The github server offers no tools.",),
        instructions="You are terse.",
    )


async def streamed(model: OpenAIModel, request: ModelRequest) -> tuple[list[str], ModelResponse]:
    deltas: list[str] = []
    items: AsyncIterator[TextDelta | ModelResponse] = model.stream(request)
    async for item in items:
        if isinstance(item, TextDelta):
            deltas.append(item.text)
        else:
            return deltas, item
    raise AssertionError("the stream ended without a response")


async def answer(model: OpenAIModel, request: ModelRequest, *, stream: bool) -> ModelResponse:
    return (await streamed(model, request))[1] if stream else await model.respond(request)


def system_of(body: Mapping[str, Any]) -> str:
    if "instructions" in body:
        return str(body["instructions"])
    first = body["messages"][0]
    assert first["role"] == "system"
    return str(first["content"])


@pytest.mark.parametrize("stream", [False, True], ids=["json", "streamed"])
async def test_a_plain_answer_comes_back_with_usage_and_finish_reason(
    model: OpenAIModel, fake: FakeOpenAI, stream: bool
) -> None:
    fake.reply(FakeOpenAIAnswer(text="Hello there, how can I help?", input_tokens=21, output_tokens=8))
    response = await answer(model, ask(), stream=stream)
    assert response == ModelResponse(
        text="Hello there, how can I help?", usage=Usage(21, 8), finish_reason=FinishReason.END_TURN
    )
    [seen] = fake.requests
    assert seen.had_key
    assert seen.body["model"] == "gpt-test"
    assert system_of(seen.body) == "You are terse.\n\nThe github server offers no tools."


async def test_streamed_deltas_joined_are_the_final_text(model: OpenAIModel, fake: FakeOpenAI) -> None:
    fake.reply(FakeOpenAIAnswer(text="It is sunny in Paris today.", piece_chars=5))
    deltas, response = await streamed(model, ask())
    assert len(deltas) > 1
    assert "".join(deltas) == response.text == "It is sunny in Paris today."


async def test_the_chat_stream_asks_for_usage(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.reply(FakeOpenAIAnswer(text="ok", input_tokens=3, output_tokens=1))
    _, response = await streamed(OpenAIChatModel(client, "gpt-test", temperature=0.2, max_tokens=50), ask())
    assert response.usage == Usage(3, 1)
    [seen] = fake.requests
    assert seen.body["stream_options"] == {"include_usage": True}
    assert (seen.body["temperature"], seen.body["max_tokens"]) == (0.2, 50)


async def test_leaving_a_stream_early_closes_it_and_the_client_keeps_working(
    model: OpenAIModel, fake: FakeOpenAI
) -> None:
    fake.reply(FakeOpenAIAnswer(text="A long answer that the user stops reading.", piece_chars=2))
    fake.reply(FakeOpenAIAnswer(text="Next answer."))
    items = model.stream(ask())
    assert isinstance(items, AsyncGenerator)  # what a user's `async for ... break` closes
    first = await anext(items)
    await items.aclose()
    assert first == TextDelta("A ")
    assert (await model.respond(ask())).text == "Next answer."


@pytest.mark.parametrize("stream", [False, True], ids=["json", "streamed"])
async def test_parallel_tool_calls_come_back_with_their_raw_arguments(
    model: OpenAIModel, fake: FakeOpenAI, stream: bool
) -> None:
    # Four characters a piece: each call's arguments arrive split across many chunks when streamed.
    fake.reply(FakeOpenAIAnswer(tool_calls=PARALLEL_CALLS, piece_chars=4))
    response = await answer(model, ask(), stream=stream)
    assert response.tool_calls == PARALLEL_CALLS
    assert response.finish_reason is FinishReason.TOOL_CALLS


async def test_tool_specs_are_sent_as_function_tools_with_their_schemas(model: OpenAIModel, fake: FakeOpenAI) -> None:
    fake.reply(FakeOpenAIAnswer(text="ok"))
    await model.respond(ask())
    [tool] = fake.requests[0].body["tools"]
    function = tool.get("function", tool)  # Chat Completions nests it; Responses does not
    assert tool["type"] == "function"
    assert function["name"] == "weather"
    assert function["description"] == "The weather in a city"
    assert function["parameters"] == dict(WEATHER.input_schema)
    assert model.limits.max_tools == 128


PNG = b"\x89PNG\r\n\x1a\nnot-really-an-image"


def conversation_with_results() -> tuple[Message, ...]:
    chart = ToolResult(text="the chart", attachments=(Attachment("image/png", PNG),))
    return (
        Message.user("Weather in Paris and Lyon?"),
        Message.assistant("Looking.", tool_calls=PARALLEL_CALLS),
        Message.tool(PARALLEL_CALLS[0], chart),
        Message.tool(PARALLEL_CALLS[1], ToolResult.error("the weather service is down")),
    )


async def test_chat_completions_get_tool_results_with_images_and_errors(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    fake.reply(FakeOpenAIAnswer(text="Sunny in Paris."))
    await OpenAIChatModel(client, "gpt-test").respond(ask(*conversation_with_results()))
    _, user, assistant, chart, image, failure = fake.requests[0].body["messages"]
    assert user == {"role": "user", "content": "Weather in Paris and Lyon?"}
    assert assistant["content"] == "Looking."
    assert [call["function"]["arguments"] for call in assistant["tool_calls"]] == [c.arguments for c in PARALLEL_CALLS]
    assert chart == {"role": "tool", "tool_call_id": "call_1", "content": "the chart"}
    assert image["role"] == "user"
    assert image["content"][1]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert failure == {"role": "tool", "tool_call_id": "call_2", "content": "Error: the weather service is down"}


async def test_responses_get_tool_results_with_images_and_errors(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.reply(FakeOpenAIAnswer(text="Sunny in Paris."))
    await OpenAIResponsesModel(client, "gpt-test").respond(ask(*conversation_with_results()))
    body = fake.requests[0].body
    user, said, first_call, second_call, chart, failure = body["input"]
    assert user == {"type": "message", "role": "user", "content": "Weather in Paris and Lyon?"}
    assert said == {"type": "message", "role": "assistant", "content": "Looking."}
    assert [first_call["call_id"], second_call["call_id"]] == ["call_1", "call_2"]
    assert second_call["arguments"] == PARALLEL_CALLS[1].arguments
    assert chart["call_id"] == "call_1"
    assert chart["output"] == [
        {"type": "input_text", "text": "the chart"},
        {"type": "input_image", "image_url": "data:image/png;base64," + base64.b64encode(PNG).decode()},
    ]
    assert failure == {
        "type": "function_call_output",
        "call_id": "call_2",
        "output": "Error: the weather service is down",
    }
    assert body["store"] is False


@pytest.mark.parametrize("stream", [False, True], ids=["json", "streamed"])
async def test_a_refusal_is_the_answer_with_its_finish_reason(
    model: OpenAIModel, fake: FakeOpenAI, stream: bool
) -> None:
    fake.reply(FakeOpenAIAnswer(refusal="I can't help with that."))
    response = await answer(model, ask(), stream=stream)
    assert response.text == "I can't help with that."
    assert response.finish_reason is FinishReason.REFUSAL


@pytest.mark.parametrize("stream", [False, True], ids=["json", "streamed"])
async def test_an_answer_cut_off_at_its_limit_says_so(model: OpenAIModel, fake: FakeOpenAI, stream: bool) -> None:
    fake.reply(FakeOpenAIAnswer(text="The weather in Paris is", cut_off=True))
    response = await answer(model, ask(), stream=stream)
    assert response.text == "The weather in Paris is"
    assert response.finish_reason is FinishReason.MAX_TOKENS


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        (FakeOpenAIFailure(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
         ModelAuthenticationError),
        (FakeOpenAIFailure(400, "This model's maximum context length is 8192 tokens.", code="context_length_exceeded"),
         ModelContextTooLongError),
        (FakeOpenAIFailure(500, "The server had an error while processing your request.", "server_error"),
         ModelUnavailableError),
        (FakeOpenAIFailure(529, "Overloaded", "overloaded_error"), ModelUnavailableError),
        (FakeOpenAIFailure(404, "The model `gpt-nope` does not exist.", code="model_not_found"), ModelRequestError),
    ],
    ids=["401", "400-context", "500", "529", "404"],
)  # fmt: skip
@pytest.mark.parametrize("stream", [False, True], ids=["json", "streamed"])
async def test_error_bodies_map_to_the_family_with_the_providers_message(
    model: OpenAIModel, fake: FakeOpenAI, failure: FakeOpenAIFailure, kind: type[ModelError], stream: bool
) -> None:
    fake.reply(failure)
    with pytest.raises(kind) as raised:
        await answer(model, ask(), stream=stream)
    assert type(raised.value) is kind
    assert raised.value.provider_message == failure.message
    assert raised.value.status == failure.status
    assert KEY not in str(raised.value)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "streamed"])
async def test_rate_limited_carries_the_retry_after_hint(model: OpenAIModel, fake: FakeOpenAI, stream: bool) -> None:
    fake.reply(FakeOpenAIFailure(429, "Rate limit reached.", "requests", "rate_limit_exceeded", {"retry-after": "2"}))
    with pytest.raises(ModelRateLimitedError) as raised:
        await answer(model, ask(), stream=stream)
    assert raised.value.retry_after == 2.0
    assert raised.value.provider_message == "Rate limit reached."
    assert len(fake.requests) == 1  # the SDK's retries are the client's (none here), none added


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        (FakeOpenAIFailedResponse("server_error", "The model failed to generate a response."), ModelUnavailableError),
        (FakeOpenAIFailedResponse("rate_limit_exceeded", "Too many tokens in flight."), ModelRateLimitedError),
        (FakeOpenAIFailedResponse("invalid_prompt", "The prompt was flagged."), ModelRequestError),
    ],
    ids=["server-error", "rate-limited", "invalid-prompt"],
)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "streamed"])
async def test_a_failed_response_raises_like_a_failed_request(
    fake: FakeOpenAI,
    client: openai.AsyncOpenAI,
    failure: FakeOpenAIFailedResponse,
    kind: type[ModelError],
    stream: bool,
) -> None:
    fake.reply(failure)
    with pytest.raises(kind) as raised:
        await answer(OpenAIResponsesModel(client, "gpt-test"), ask(), stream=stream)
    assert type(raised.value) is kind
    assert raised.value.provider_message == failure.message


@pytest.mark.parametrize(
    ("broken", "kind", "message"),
    [
        (FakeOpenAIBrokenStream("It is sun", FakeOpenAIFailure(500, "The server had an error.", "server_error")),
         ModelUnavailableError, "The server had an error."),
        (FakeOpenAIBrokenStream("It is sun", FakeOpenAIFailure(429, "Rate limit reached.", code="rate_limit_exceeded")),
         ModelRateLimitedError, "Rate limit reached."),
        (FakeOpenAIBrokenStream("It is sun"), ModelUnavailableError, "Connection error."),
        (FakeOpenAIBrokenStream("It is sun", dropped=False), ModelUnavailableError,
         "the stream ended before the answer was complete"),
    ],
    ids=["error-chunk", "error-chunk-rate-limited", "connection-dropped", "ended-before-finish"],
)  # fmt: skip
async def test_a_chat_stream_that_breaks_midway_raises_the_family_after_its_deltas(
    fake: FakeOpenAI, client: openai.AsyncOpenAI, broken: FakeOpenAIBrokenStream, kind: type[ModelError], message: str
) -> None:
    fake.reply(broken, FakeOpenAIAnswer(text="Next answer."))
    model = OpenAIChatModel(client, "gpt-test")
    deltas: list[str] = []

    async def read_the_stream() -> None:
        async for item in model.stream(ask()):
            assert isinstance(item, TextDelta), "a broken stream must not end with a response"
            deltas.append(item.text)

    with pytest.raises(kind) as raised:
        await read_the_stream()
    assert type(raised.value) is kind
    assert raised.value.provider_message == message
    assert "".join(deltas) == "It is sun"  # what the user saw so far
    assert (await model.respond(ask())).text == "Next answer."  # the client is still usable


class Weather:
    spec = WEATHER

    def __init__(self) -> None:
        self.cities: list[str] = []

    async def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        self.cities.append(str(arguments["city"]))
        return ToolResult(text=f"Sunny in {arguments['city']}")


async def test_a_whole_turn_runs_a_tool_call_through_the_adapter(
    model: OpenAIModel, fake: FakeOpenAI, mock_clock: MockClock
) -> None:
    weather = Weather()
    fake.reply(
        FakeOpenAIAnswer(tool_calls=(PARALLEL_CALLS[0],)),
        FakeOpenAIAnswer(text="It is sunny in Paris."),
    )
    runtime = ChatRuntime(model, instructions="You are terse.", tools=[weather], clock=mock_clock)
    result = await runtime.run_turn(Chat(id="chat-1", owner="alice"), "Weather in Paris?")
    assert result.text == "It is sunny in Paris."
    assert weather.cities == ["Paris, France"]
    second = fake.requests[1].body
    sent = str(second.get("messages", second.get("input")))
    assert "Sunny in Paris, France" in sent


def test_the_models_package_needs_no_sdk_until_an_adapter_is_used() -> None:
    blocked = (
        "import sys; sys.modules['openai'] = None\nimport chat_mcp_primer.models as models\nmodels.OpenAIChatModel\n"
    )
    done = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "ModuleNotFoundError: chat_mcp_primer.models.OpenAIChatModel needs the 'openai' extra "
        "(openai is not installed): pip install 'chat-mcp-primer[openai]'"
    )
