from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum

from chat_mcp_primer._tasks import TaskGroup
from chat_mcp_primer.chatloop._result_limits import DEFAULT_RESULT_LIMITS, ToolResultLimits, bound_result
from chat_mcp_primer.events import EventName, Events
from chat_mcp_primer.model import (
    LimitedModel,
    Message,
    Model,
    ModelRequest,
    Tool,
    ToolCall,
    ToolResult,
    ToolSpec,
)

# The reference caps a turn at 1200 steps: far beyond any sensible task, it only stops a model that
# loops forever from running up an unbounded bill.
DEFAULT_MAX_STEPS = 1200

PrepareTools = Callable[[Sequence[Tool]], Awaitable[Sequence[Tool] | None]]
StepNotes = Callable[[], Sequence[str]]


class StopReason(StrEnum):
    COMPLETED = "completed"  # the model answered without tool calls
    STEP_LIMIT = "step_limit"


@dataclass(frozen=True, slots=True)
class LoopResult:
    messages: tuple[Message, ...]  # the messages this turn added, in order
    steps: int
    stop_reason: StopReason
    tools: tuple[Tool, ...]  # the tool list after the last step

    @property
    def final_text(self) -> str:
        """The model's last answer."""
        return next((message.text for message in reversed(self.messages) if message.role == "assistant"), "")


def decode_arguments(raw: str) -> dict[str, object] | str:
    """The call's arguments as a JSON object, or the error text the model gets back."""
    try:
        decoded = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as exc:
        return f"invalid JSON input: {exc.msg} at position {exc.pos}"
    if not isinstance(decoded, dict):
        return f"invalid JSON input: arguments must be a JSON object, not {type(decoded).__name__}"
    return decoded


async def _run_call(call: ToolCall, tools: dict[str, Tool], events: Events) -> ToolResult:
    tool = tools.get(call.name)
    if tool is None:
        events.emit(EventName.TOOL_UNKNOWN, tool=call.name)
        return ToolResult.error(f"unknown tool {call.name!r}; call one of the tools you were offered")
    arguments = decode_arguments(call.arguments)
    if isinstance(arguments, str):
        events.emit(EventName.TOOL_BAD_ARGUMENTS, tool=call.name)
        return ToolResult.error(arguments)
    try:
        result = await tool.call(arguments)
    except Exception as exc:
        events.emit(EventName.TOOL_RAISED, tool=call.name, error_type=type(exc).__name__)
        return ToolResult.error(f"tool {call.name!r} failed: {type(exc).__name__}: {exc}")
    events.emit(EventName.TOOL_CALLED, tool=call.name, is_error=result.is_error)
    return result


async def _run_into(
    results: list[ToolResult | None],
    index: int,
    call: ToolCall,
    tools: dict[str, Tool],
    limits: ToolResultLimits,
    events: Events,
) -> None:
    # Every result, the error texts the loop makes included, is bounded here: one place for every tool.
    result, truncation = bound_result(await _run_call(call, tools, events), limits)
    if truncation is not None:
        events.emit(EventName.TOOL_RESULT_TRUNCATED, tool=call.name, **asdict(truncation))
    results[index] = result


def _offered(
    tools: Sequence[Tool], max_tools: int | None, events: Events
) -> tuple[dict[str, Tool], tuple[ToolSpec, ...]]:
    """The tools a step offers (by name, and their specs): all of them, or the first ``max_tools``; the
    list keeps the turn's own tools before the workspace's, so those are the ones kept."""
    if max_tools is not None and len(tools) > max_tools:
        events.emit(EventName.MODEL_TOOLS_DROPPED, offered=max_tools, dropped=len(tools) - max_tools)
        tools = tools[:max_tools]
    return {tool.spec.name: tool for tool in tools}, tuple(tool.spec for tool in tools)


async def run_loop(
    model: Model,
    history: Sequence[Message],
    tools: Sequence[Tool],
    *,
    prepare_tools: PrepareTools | None = None,
    step_notes: StepNotes | None = None,
    instructions: str = "",
    max_steps: int = DEFAULT_MAX_STEPS,
    result_limits: ToolResultLimits = DEFAULT_RESULT_LIMITS,
    events: Events,
) -> LoopResult:
    """Run model steps until the model answers without tool calls, or ``max_steps`` steps ran.

    Before every step ``prepare_tools`` (if given) sees the current tool list; a non-None answer
    replaces it, and the new tools are offered and callable in that very step; then ``step_notes`` (if
    given) says what the step's request carries as `ModelRequest.notes`, beside ``instructions``. A model
    that states its provider's limits (`LimitedModel`) is offered no more tools than it accepts: the
    ones the turn began with first, then the workspace's in order, the rest left out with a
    ``model.tools_dropped`` event (they cannot be called at that step). The tool calls of one
    step run concurrently; their results are appended in the order the model asked, each cut to
    ``result_limits`` with a marker saying what was left out. A tool that raises produces an error result;
    cancellation propagates.
    """
    if max_steps < 1:
        raise ValueError("max_steps must be at least 1")
    max_tools = model.limits.max_tools if isinstance(model, LimitedModel) else None
    current: list[Tool] = list(tools)
    by_name, specs = _offered(current, max_tools, events)
    added: list[Message] = []
    for step in range(max_steps):
        if prepare_tools is not None:
            replacement = await prepare_tools(tuple(current))
            if replacement is not None:
                current = list(replacement)
                by_name, specs = _offered(current, max_tools, events)
        events.emit(EventName.STEP_STARTED, step=step, tools=len(specs))
        notes = tuple(step_notes()) if step_notes is not None else ()
        request = ModelRequest(
            messages=(*history, *added), tools=specs, step=step, notes=notes, instructions=instructions
        )
        response = await model.respond(request)
        added.append(Message.assistant(response.text, response.tool_calls))
        if not response.tool_calls:
            return LoopResult(tuple(added), step + 1, StopReason.COMPLETED, tuple(current))
        results: list[ToolResult | None] = [None] * len(response.tool_calls)
        if len(response.tool_calls) == 1:  # the usual step: no task needed
            await _run_into(results, 0, response.tool_calls[0], by_name, result_limits, events)
        else:
            async with TaskGroup() as group:
                for index, call in enumerate(response.tool_calls):
                    group.start_soon(_run_into, results, index, call, by_name, result_limits, events)
        for call, result in zip(response.tool_calls, results, strict=True):
            assert result is not None
            added.append(Message.tool(call, result))
    events.emit(EventName.TURN_STEP_LIMIT, steps=max_steps)
    return LoopResult(tuple(added), max_steps, StopReason.STEP_LIMIT, tuple(current))
