from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from chat_mcp_primer.model._messages import Message, ToolCall, ToolSpec


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """One step's request: the conversation so far and the tools offered at this step."""

    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...]
    step: int

    @property
    def tool_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.tools)


@dataclass(frozen=True, slots=True)
class ModelResponse:
    """The model's answer: text, and tool calls to run. No tool calls ends the turn."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()


class Model(Protocol):
    """Adapter to an LLM. Implementations translate to the provider's API; the loop needs nothing else."""

    async def respond(self, request: ModelRequest) -> ModelResponse: ...
