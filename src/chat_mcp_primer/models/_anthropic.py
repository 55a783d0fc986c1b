"""`AnthropicModel`: the `Model` seam over Anthropic's Messages API, through the user's own SDK client."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass, field

from chat_mcp_primer._extras import is_missing_extra, missing_extra_message

try:
    import anthropic
    from anthropic.types import Message as AnthropicMessage
    from anthropic.types import RawMessageStreamEvent
    from anthropic.types.message_create_params import MessageCreateParamsBase
except ModuleNotFoundError as missing:  # the anthropic extra is not installed: say so in one line
    if not is_missing_extra(missing):
        raise
    raise ModuleNotFoundError(
        missing_extra_message("chat_mcp_primer.models.AnthropicModel", "anthropic", missing), name=missing.name
    ) from None

from chat_mcp_primer.model import (
    ModelAuthenticationError,
    ModelContextTooLongError,
    ModelError,
    ModelLimits,
    ModelRateLimitedError,
    ModelRequest,
    ModelRequestError,
    ModelResponse,
    ModelStreamItem,
    ModelUnavailableError,
    TextDelta,
    ToolCall,
    Usage,
)
from chat_mcp_primer.models._anthropic_wire import (
    all_input_tokens,
    finish_reason,
    message_params,
    system_text,
    tool_params,
    usage_of,
)

PROVIDER = "anthropic"

# The Messages API requires a ceiling on the answer's length. 4096 tokens is the output limit of the
# smallest Claude models, so the default is valid for every model and holds a long answer with tool calls;
# raise it for models and tasks that write more.
DEFAULT_MAX_TOKENS = 4096

# How the API says a request is longer than the model's context window (a 400 invalid_request_error):
# "prompt is too long: 215000 tokens > 200000 maximum", or, for some models, in terms of the context window.
_CONTEXT_TOO_LONG_PHRASES = ("prompt is too long", "context window", "context length")

# HTTP: 4xx the request's fault, 5xx the provider's (529 is the API's "overloaded").
_FIRST_ERROR_STATUS = 400
_FIRST_SERVER_ERROR_STATUS = 500
_AUTHENTICATION_TYPES = frozenset({"authentication_error", "permission_error"})
_UNAVAILABLE_TYPES = frozenset({"overloaded_error", "api_error", "timeout_error"})


class AnthropicModel:
    """A `Model` (and `StreamingModel`) over Anthropic's Messages API.

    Built from your own ``anthropic.AsyncAnthropic`` client, so its key, base URL, timeouts, retries and
    proxy stay yours; each step is one ``messages.create`` call, after which the SDK's retries are spent:
    this adapter adds none. The request's instructions and notes become the system prompt; tool calls come
    back with their arguments as JSON text. Failures raise the `ModelError` family with the API's message
    (authentication, rate limited with ``retry_after``, context too long, unavailable for 5xx and
    ``overloaded_error``, any other refusal of the request).
    """

    def __init__(self, client: anthropic.AsyncAnthropic, model: str, *, max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        self.client = client
        self.model = model
        self.max_tokens = max_tokens

    @property
    def limits(self) -> ModelLimits:
        # The Messages API reference and its tool-use guide state no cap on how many tools a request may
        # offer, only one on their names (^[a-zA-Z0-9_-]{1,64}$, which the runtime's names already keep),
        # so the loop offers every tool.
        return ModelLimits(max_tools=None)

    def _params(self, request: ModelRequest) -> MessageCreateParamsBase:
        params: MessageCreateParamsBase = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "messages": message_params(request.messages),
        }
        # Left out when empty: the API takes no system prompt and no tools as "none".
        if system := system_text(request):
            params["system"] = system
        if tools := tool_params(request.tools):
            params["tools"] = tools
        return params

    async def respond(self, request: ModelRequest) -> ModelResponse:
        with _mapped_errors():
            answer = await self.client.messages.create(**self._params(request))
        return _response(answer)

    async def stream(self, request: ModelRequest) -> AsyncGenerator[ModelStreamItem, None]:
        """The step as a stream of server-sent events: each text delta as it comes, then the whole response.
        Closing the iterator early closes the HTTP response, which ends the request."""
        answer = _StreamedAnswer()
        with _mapped_errors():
            events = await self.client.messages.create(**self._params(request), stream=True)
            async with events:
                async for event in events:
                    delta = answer.add(event)
                    if delta:
                        yield TextDelta(delta)
        yield answer.response()


def _response(answer: AnthropicMessage) -> ModelResponse:
    text: list[str] = []
    calls: list[ToolCall] = []
    for block in answer.content:
        if block.type == "text":
            text.append(block.text)
        elif block.type == "tool_use":
            calls.append(ToolCall(id=block.id, name=block.name, arguments=json.dumps(block.input)))
    return ModelResponse(
        text="".join(text),
        tool_calls=tuple(calls),
        usage=usage_of(answer.usage),
        finish_reason=finish_reason(answer.stop_reason),
    )


@dataclass(slots=True)
class _StreamedCall:
    id: str
    name: str
    arguments: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _StreamedAnswer:
    """The answer as its events arrive: text and tool calls by content block index, usage, stop reason."""

    text: list[str] = field(default_factory=list)
    calls: dict[int, _StreamedCall] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    stop_reason: anthropic.types.StopReason | None = None

    def add(self, event: RawMessageStreamEvent) -> str:
        """Take in one event; return the text it adds ("" for none)."""
        if event.type == "message_start":
            self.usage = usage_of(event.message.usage)
        elif event.type == "content_block_start":
            block = event.content_block
            if block.type == "tool_use":
                self.calls[event.index] = _StreamedCall(block.id, block.name)
            elif block.type == "text" and block.text:
                self.text.append(block.text)
                return block.text
        elif event.type == "content_block_delta":
            delta = event.delta
            if delta.type == "text_delta":
                self.text.append(delta.text)
                return delta.text
            if delta.type == "input_json_delta" and event.index in self.calls:
                self.calls[event.index].arguments.append(delta.partial_json)
        elif event.type == "message_delta":
            self.stop_reason = event.delta.stop_reason or self.stop_reason
            # message_delta's counts are cumulative; input_tokens is there only when it changed.
            counted = event.usage
            seen_input = self.usage.input_tokens
            if counted.input_tokens is not None:
                seen_input = all_input_tokens(
                    counted.input_tokens, counted.cache_creation_input_tokens, counted.cache_read_input_tokens
                )
            self.usage = Usage(input_tokens=seen_input, output_tokens=counted.output_tokens)
        return ""

    def response(self) -> ModelResponse:
        calls = tuple(
            # A call without arguments streams no JSON at all: its input is the empty object.
            ToolCall(id=call.id, name=call.name, arguments="".join(call.arguments) or "{}")
            for _, call in sorted(self.calls.items())
        )
        return ModelResponse(
            text="".join(self.text), tool_calls=calls, usage=self.usage, finish_reason=finish_reason(self.stop_reason)
        )


@contextlib.contextmanager
def _mapped_errors() -> Iterator[None]:
    """The SDK's exceptions, once its own retries are spent, as the `ModelError` family."""
    try:
        yield
    except anthropic.APIStatusError as error:
        raise _status_error(error) from error
    except anthropic.APIConnectionError as error:  # also its timeouts
        raise ModelUnavailableError(PROVIDER, error.message) from error
    except anthropic.APIError as error:  # an answer the SDK could not read as the API's
        raise ModelRequestError(PROVIDER, error.message) from error


def _status_error(error: anthropic.APIStatusError) -> ModelError:
    message = error.api_message or error.message
    # An error event in the middle of a stream arrives on a 200 response: no HTTP status tells of it, the
    # body's error type says what it is.
    status = error.status_code if error.status_code >= _FIRST_ERROR_STATUS else None
    kind = error.type or ""
    if status in (401, 403) or kind in _AUTHENTICATION_TYPES:
        return ModelAuthenticationError(PROVIDER, message, status=status)
    if status == 429 or kind == "rate_limit_error":
        return ModelRateLimitedError(PROVIDER, message, status=status, retry_after=_retry_after(error))
    too_long = any(phrase in message.lower() for phrase in _CONTEXT_TOO_LONG_PHRASES)
    if too_long and (status == 400 or kind == "invalid_request_error"):
        return ModelContextTooLongError(PROVIDER, message, status=status)
    if (status is not None and status >= _FIRST_SERVER_ERROR_STATUS) or kind in _UNAVAILABLE_TYPES:
        return ModelUnavailableError(PROVIDER, message, status=status)
    return ModelRequestError(PROVIDER, message, status=status)


def _retry_after(error: anthropic.APIStatusError) -> float | None:
    """The ``retry-after`` header in seconds (the API sends a number; an HTTP date is not used there)."""
    value = error.response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
