from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from chat_mcp_primer.model._messages import Message, ToolCall, ToolSpec


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """One step's request: the conversation so far, the tools offered at this step, and the runtime's
    notes for the model about this step (which workspace MCP servers failed or offer no tools, and why),
    each a short sentence an adapter renders as system text, so the model can tell the user what is
    missing instead of guessing."""

    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...]
    step: int
    notes: tuple[str, ...] = ()

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
