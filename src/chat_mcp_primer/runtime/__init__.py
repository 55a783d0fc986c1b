"""`ChatRuntime`: wires the chat loop, workspace tools and workspace MCP discovery into turns."""

from chat_mcp_primer.runtime._runtime import ChatRuntime, RuntimeClosedError, TurnResult
from chat_mcp_primer.runtime._stream import (
    StepHeld,
    StepResumed,
    ToolCallFinished,
    ToolCallStarted,
    TurnEvent,
    TurnFinished,
    TurnTextDelta,
    WorkspacePhase,
    WorkspaceProgress,
    WorkspaceToolsAdded,
)
from chat_mcp_primer.runtime._workspaces import Workspaces, WorkspacesFrom, WorkspaceToolsFactory

__all__ = [
    "ChatRuntime",
    "RuntimeClosedError",
    "StepHeld",
    "StepResumed",
    "ToolCallFinished",
    "ToolCallStarted",
    "TurnEvent",
    "TurnFinished",
    "TurnResult",
    "TurnTextDelta",
    "WorkspacePhase",
    "WorkspaceProgress",
    "WorkspaceToolsAdded",
    "WorkspaceToolsFactory",
    "Workspaces",
    "WorkspacesFrom",
]
