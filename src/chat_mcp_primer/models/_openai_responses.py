"""`OpenAIResponsesModel`: the `Model` seam over OpenAI's Responses API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
from openai.types.responses import (
    FunctionToolParam,
    Response,
    ResponseCompletedEvent,
    ResponseFailedEvent,
    ResponseIncompleteEvent,
    ResponseInputItemParam,
    ResponseRefusalDeltaEvent,
    ResponseTextDeltaEvent,
)
from openai.types.responses.response_function_call_output_item_list_param import (
    ResponseFunctionCallOutputItemListParam,
)

from chat_mcp_primer.model import (
    FinishReason,
    Message,
    ModelError,
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
from chat_mcp_primer.models._openai_common import OPENAI_RESPONSES_LIMITS, data_url, is_image, result_text, system_text
from chat_mcp_primer.models._openai_errors import PROVIDER, failure_error, model_error

# Why an incomplete response stopped, in the seam's words.
_INCOMPLETE_REASONS = {"max_output_tokens": FinishReason.MAX_TOKENS, "content_filter": FinishReason.REFUSAL}


class OpenAIResponsesModel:
    """A model behind the Responses API, reached through the user's own ``openai.AsyncOpenAI`` client (its
    key, base URL, retries and proxy). ``temperature`` and ``max_output_tokens`` are sent only when set.

    The whole conversation is sent each step as input items (messages, ``function_call`` and
    ``function_call_output``, a result's images among its output), with ``store`` off by default: the
    runtime keeps the conversation, the provider need not. The system text goes in ``instructions``. A
    refusal is the response's text, with `FinishReason.REFUSAL`; a failed response raises like a failed
    request, in the `ModelError` family.
    """

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        model: str,
        *,
        temperature: float | None = None,
        max_output_tokens: int | None = None,
        store: bool = False,
        limits: ModelLimits = OPENAI_RESPONSES_LIMITS,
    ) -> None:
        self._client = client
        self._model = model
        self._temperature = temperature
        self._max_output_tokens = max_output_tokens
        self._store = store
        self._limits = limits

    @property
    def limits(self) -> ModelLimits:
        """128 tools by default: OpenAI documents no limit for the Responses API's `tools` and states 128 for
        Chat Completions (see `OPENAI_RESPONSES_LIMITS`); pass ``limits=`` to state another."""
        return self._limits

    def _arguments(self, request: ModelRequest) -> dict[str, Any]:
        """What every request of this model sends, streamed or not."""
        return {
            "model": self._model,
            "instructions": system_text(request) or openai.omit,
            "input": _input(request),
            "tools": _tools(request) or openai.omit,
            "temperature": self._temperature if self._temperature is not None else openai.omit,
            "max_output_tokens": self._max_output_tokens if self._max_output_tokens is not None else openai.omit,
            "store": self._store,
        }

    async def respond(self, request: ModelRequest) -> ModelResponse:
        try:
            response = await self._client.responses.create(**self._arguments(request))
        except openai.APIError as error:
            raise model_error(error) from error
        return _response(response)

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelStreamItem]:
        """Text deltas (``response.output_text.delta``, ``response.refusal.delta``) as they come, then the
        whole response from the final event; leaving early closes the HTTP stream."""
        final: Response | None = None
        try:
            events = await self._client.responses.create(**self._arguments(request), stream=True)
            async with events:
                async for event in events:
                    if isinstance(event, ResponseTextDeltaEvent | ResponseRefusalDeltaEvent) and event.delta:
                        yield TextDelta(event.delta)
                    elif isinstance(event, ResponseCompletedEvent | ResponseIncompleteEvent | ResponseFailedEvent):
                        final = event.response
        except openai.APIError as error:
            raise model_error(error) from error
        if final is None:
            raise ModelUnavailableError(PROVIDER, "the response stream ended before the response was complete")
        yield _response(final)


def _input(request: ModelRequest) -> list[ResponseInputItemParam]:
    items: list[ResponseInputItemParam] = []
    for message in request.messages:
        items.extend(_items(message))
    return items


def _items(message: Message) -> list[ResponseInputItemParam]:
    if message.role is Role.USER:
        return [{"type": "message", "role": "user", "content": message.text}]
    if message.role is Role.ASSISTANT:
        items: list[ResponseInputItemParam] = []
        if message.text:
            items.append({"type": "message", "role": "assistant", "content": message.text})
        items.extend(
            {"type": "function_call", "call_id": call.id, "name": call.name, "arguments": call.arguments}
            for call in message.tool_calls
        )
        return items
    call_id = message.tool_call_id or ""
    result = message.result
    if result is None:
        return [{"type": "function_call_output", "call_id": call_id, "output": ""}]
    images = [attachment for attachment in result.attachments if is_image(attachment)]
    if not images:
        return [{"type": "function_call_output", "call_id": call_id, "output": result_text(result)}]
    output: ResponseFunctionCallOutputItemListParam = [{"type": "input_text", "text": result_text(result)}]
    output.extend({"type": "input_image", "image_url": data_url(image)} for image in images)
    return [{"type": "function_call_output", "call_id": call_id, "output": output}]


def _tools(request: ModelRequest) -> list[FunctionToolParam]:
    # Not strict: strict mode needs every property required and no extra ones, which MCP servers' schemas
    # seldom are.
    return [
        {
            "type": "function",
            "name": spec.name,
            "description": spec.description,
            "parameters": dict(spec.input_schema),
            "strict": False,
        }
        for spec in request.tools
    ]


def _failure(response: Response) -> ModelError:
    error = response.error
    if error is None:
        return failure_error(None, "the response failed")
    return failure_error(error.code, error.message)


def _response(response: Response) -> ModelResponse:
    if response.status == "failed":
        raise _failure(response)
    texts: list[str] = []
    refused = False
    calls: list[ToolCall] = []
    for item in response.output:
        if item.type == "message":
            for part in item.content:
                if part.type == "output_text":
                    texts.append(part.text)
                else:
                    texts.append(part.refusal)
                    refused = True
        elif item.type == "function_call":
            calls.append(ToolCall(id=item.call_id, name=item.name, arguments=item.arguments))
    usage = response.usage
    return ModelResponse(
        text="".join(texts),
        tool_calls=tuple(calls),
        usage=Usage(usage.input_tokens, usage.output_tokens) if usage is not None else None,
        finish_reason=_finish(response, refused=refused, called=bool(calls)),
    )


def _finish(response: Response, *, refused: bool, called: bool) -> FinishReason:
    if refused:
        return FinishReason.REFUSAL
    if response.status == "incomplete":
        reason = response.incomplete_details.reason if response.incomplete_details is not None else None
        return _INCOMPLETE_REASONS.get(reason or "", FinishReason.OTHER)
    return FinishReason.TOOL_CALLS if called else FinishReason.END_TURN
