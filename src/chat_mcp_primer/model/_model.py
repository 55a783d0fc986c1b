from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from chat_mcp_primer.model._messages import Message, ToolCall, ToolSpec


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """One step's request: the system instructions, the conversation so far, the tools offered at this step,
    and the runtime's notes for the model about this step (which workspace MCP servers failed or offer no
    tools, and why), each a short sentence an adapter renders as system text after the instructions, so
    the model can tell the user what is missing instead of guessing."""

    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...]
    step: int
    notes: tuple[str, ...] = ()
    # The system prompt (`ChatRuntime(instructions=...)`); "" for none.
    instructions: str = ""

    @property
    def tool_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.tools)


class FinishReason(StrEnum):
    """Why the model stopped, in words common to the providers."""

    END_TURN = "end_turn"  # it answered
    TOOL_CALLS = "tool_calls"  # it asked for tool calls
    MAX_TOKENS = "max_tokens"  # it was cut off at its output limit
    REFUSAL = "refusal"  # it refused, or the provider's content filter stopped it
    OTHER = "other"  # anything else the provider says


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one step cost, as the provider counts them."""

    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True, slots=True)
class ModelResponse:
    """The model's answer: text, and tool calls to run (none ends the turn); with what the provider said
    it cost and why it stopped, when it says."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage | None = None
    finish_reason: FinishReason | None = None


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the answer's text, as it streams."""

    text: str


ModelStreamItem = TextDelta | ModelResponse
"""What `StreamingModel.stream` yields: text deltas, then exactly one `ModelResponse`, the whole answer."""


class Model(Protocol):
    """Adapter to an LLM. Implementations translate to the provider's API; the loop needs nothing else."""

    async def respond(self, request: ModelRequest) -> ModelResponse: ...


@runtime_checkable
class StreamingModel(Model, Protocol):
    """A model that can also stream its answer: `stream` yields `TextDelta` as the text comes, and ends with
    the whole `ModelResponse` (its text is every delta joined). A streamed turn uses it when the model
    has it; closing the iterator early cancels the request."""

    def stream(self, request: ModelRequest) -> AsyncIterator[ModelStreamItem]: ...


@dataclass(frozen=True, slots=True)
class ModelLimits:
    """What a provider accepts in one request. ``max_tools``: how many tools it may be offered (None: no
    limit it states)."""

    max_tools: int | None = None


@runtime_checkable
class LimitedModel(Protocol):
    """A model that says what its provider accepts: the loop then offers no more tools than that, the
    built-in ones first, and says what it left out (``model.tools_dropped``)."""

    @property
    def limits(self) -> ModelLimits: ...
