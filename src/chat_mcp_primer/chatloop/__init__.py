"""The step loop: model steps, `prepare_tools` before each, concurrent tool calls. Knows `Model` and `Tool` only."""

from chat_mcp_primer.chatloop._loop import (
    DEFAULT_MAX_STEPS,
    LoopResult,
    OnText,
    PrepareTools,
    StepNotes,
    StopReason,
    run_loop,
)
from chat_mcp_primer.chatloop._result_limits import ToolResultLimits, Truncation, bound_result

__all__ = [
    "DEFAULT_MAX_STEPS",
    "LoopResult",
    "OnText",
    "PrepareTools",
    "StepNotes",
    "StopReason",
    "ToolResultLimits",
    "Truncation",
    "bound_result",
    "run_loop",
]
