"""`OpenAIChatModel`: the `Model` seam over OpenAI's Chat Completions, which OpenAI-compatible servers (vLLM,
Ollama, LiteLLM's proxy) speak too: point the client's ``base_url`` at them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import openai
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionContentPartParam,
    ChatCompletionMessageParam,
    ChatCompletionMessageToolCallParam,
    ChatCompletionToolParam,
)

from chat_mcp_primer.model import (
    FinishReason,
    Message,
    ModelLimits,
    ModelRequest,
    ModelResponse,
    ModelStreamItem,
    ModelUnavailableError,
    Role,
    TextDelta,
    ToolCall,
    Usage,
)
from chat_mcp_primer.models._openai_common import OPENAI_LIMITS, data_url, is_image, result_text, system_text
from chat_mcp_primer.models._openai_errors import PROVIDER, model_error

_FINISH_REASONS = {
    "stop": FinishReason.END_TURN,
    "tool_calls": FinishReason.TOOL_CALLS,
    "function_call": FinishReason.TOOL_CALLS,
    "length": FinishReason.MAX_TOKENS,
    "content_filter": FinishReason.REFUSAL,
}


class OpenAIChatModel:
    """A model behind Chat Completions, reached through the user's own ``openai.AsyncOpenAI`` client (its
    key, base URL, retries and proxy). ``temperature`` and ``max_tokens`` are sent only when set.

    The system text (instructions and notes) is a ``system`` message; a tool result's images follow it
    in a user message, since tool messages carry text only. A refusal is the response's text, with
    `FinishReason.REFUSAL`. Failures raise the `ModelError` family once the SDK's retries are spent.
    """

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        model: str,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        limits: ModelLimits = OPENAI_LIMITS,
    ) -> None:
        self._client = client
        self._model = model
        self._temperature = temperature
        self._max_tokens = max_tokens
        self._limits = limits

    @property
    def limits(self) -> ModelLimits:
        """OpenAI's tool limit by default; an OpenAI-compatible server may state its own (``limits=``)."""
        return self._limits

    async def respond(self, request: ModelRequest) -> ModelResponse:
        try:
            completion = await self._client.chat.completions.create(
                model=self._model,
                messages=_messages(request),
                tools=_tools(request) or openai.omit,
                temperature=self._temperature if self._temperature is not None else openai.omit,
                max_tokens=self._max_tokens if self._max_tokens is not None else openai.omit,
            )
        except openai.APIError as error:
            raise model_error(error) from error
        return _response(completion)

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelStreamItem]:
        """Text deltas as they come, then the whole response; leaving early closes the HTTP stream. A stream
        that breaks (an error chunk, a dropped connection, an end before the finish chunk) raises the
        `ModelError` family, after the deltas that did arrive."""
        answer = _StreamedAnswer()
        try:
            chunks = await self._client.chat.completions.create(
                model=self._model,
                messages=_messages(request),
                tools=_tools(request) or openai.omit,
                temperature=self._temperature if self._temperature is not None else openai.omit,
                max_tokens=self._max_tokens if self._max_tokens is not None else openai.omit,
                stream=True,
                stream_options={"include_usage": True},
            )
            async with chunks:
                async for chunk in chunks:
                    for text in answer.add(chunk):
                        yield TextDelta(text)
        except openai.APIError as error:
            raise model_error(error) from error
        if answer.finish_reason is None:
            # Every complete stream names why it finished; one that ends without (a proxy or server that
            # gave up mid-answer) holds part of an answer, which must not pass for the whole.
            raise ModelUnavailableError(PROVIDER, "the stream ended before the answer was complete")
        yield answer.response()


def _messages(request: ModelRequest) -> list[ChatCompletionMessageParam]:
    system = system_text(request)
    messages: list[ChatCompletionMessageParam] = [{"role": "system", "content": system}] if system else []
    for message in request.messages:
        messages.extend(_message(message))
    return messages


def _message(message: Message) -> list[ChatCompletionMessageParam]:
    if message.role is Role.USER:
        return [{"role": "user", "content": message.text}]
    if message.role is Role.ASSISTANT:
        calls: list[ChatCompletionMessageToolCallParam] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in message.tool_calls
        ]
        if calls:
            return [{"role": "assistant", "content": message.text or None, "tool_calls": calls}]
        return [{"role": "assistant", "content": message.text}]
    result = message.result
    if result is None:
        return [{"role": "tool", "tool_call_id": message.tool_call_id or "", "content": ""}]
    answer: list[ChatCompletionMessageParam] = [
        {"role": "tool", "tool_call_id": message.tool_call_id or "", "content": result_text(result)}
    ]
    images: list[ChatCompletionContentPartParam] = [
        {"type": "image_url", "image_url": {"url": data_url(attachment)}}
        for attachment in result.attachments
        if is_image(attachment)
    ]
    if images:
        caption: ChatCompletionContentPartParam = {"type": "text", "text": f"Images from {message.tool_name}:"}
        answer.append({"role": "user", "content": [caption, *images]})
    return answer


def _tools(request: ModelRequest) -> list[ChatCompletionToolParam]:
    return [
        {
            "type": "function",
            "function": {"name": spec.name, "description": spec.description, "parameters": dict(spec.input_schema)},
        }
        for spec in request.tools
    ]


def _finish(reason: str | None, *, refused: bool) -> FinishReason | None:
    if refused:
        return FinishReason.REFUSAL
    if reason is None:
        return None
    return _FINISH_REASONS.get(reason, FinishReason.OTHER)


def _response(completion: ChatCompletion) -> ModelResponse:
    usage = completion.usage
    if not completion.choices:
        return ModelResponse(usage=_usage(usage))
    choice = completion.choices[0]
    message = choice.message
    calls = tuple(
        ToolCall(id=call.id, name=call.function.name, arguments=call.function.arguments)
        for call in message.tool_calls or ()
        if call.type == "function"
    )
    return ModelResponse(
        text=message.content or message.refusal or "",
        tool_calls=calls,
        usage=_usage(usage),
        finish_reason=_finish(choice.finish_reason, refused=bool(message.refusal)),
    )


def _usage(usage: openai.types.CompletionUsage | None) -> Usage | None:
    return Usage(usage.prompt_tokens, usage.completion_tokens) if usage is not None else None


@dataclass(slots=True)
class _StreamedCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _StreamedAnswer:
    """A streamed completion put together: text and refusal pieces, tool calls by their ``index`` (their id
    and name come in the first delta, the arguments in pieces), the finish reason and the usage chunk."""

    text: list[str] = field(default_factory=list)
    refused: bool = False
    calls: dict[int, _StreamedCall] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: Usage | None = None

    def add(self, chunk: ChatCompletionChunk) -> list[str]:
        """Takes in one chunk; returns its text pieces, in order."""
        if chunk.usage is not None:
            self.usage = _usage(chunk.usage)
        pieces: list[str] = []
        for choice in chunk.choices[:1]:  # one choice is asked for (n defaults to 1)
            delta = choice.delta
            for piece in (delta.content, delta.refusal):
                if piece:
                    pieces.append(piece)
            self.refused = self.refused or bool(delta.refusal)
            for call_delta in delta.tool_calls or ():
                call = self.calls.setdefault(call_delta.index, _StreamedCall())
                call.id = call_delta.id or call.id
                function = call_delta.function
                if function is not None:
                    call.name = function.name or call.name
                    call.arguments.append(function.arguments or "")
            self.finish_reason = choice.finish_reason or self.finish_reason
        self.text.extend(pieces)
        return pieces

    def response(self) -> ModelResponse:
        calls = tuple(
            ToolCall(id=call.id, name=call.name, arguments="".join(call.arguments) or "{}")
            for _, call in sorted(self.calls.items())
        )
        return ModelResponse(
            text="".join(self.text),
            tool_calls=calls,
            usage=self.usage,
            finish_reason=_finish(self.finish_reason, refused=self.refused),
        )
