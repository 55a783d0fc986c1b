"""chat-mcp-primer: workspace MCP tools, callable in the same chat turn that provisioned the workspace."""

from chat_mcp_primer._errors import ChatMcpPrimerError, ToolArgumentError
from chat_mcp_primer.chatloop import StopReason, ToolResultLimits
from chat_mcp_primer.clock import Clock, SystemClock
from chat_mcp_primer.events import Event, EventName
from chat_mcp_primer.model import (
    Attachment,
    Chat,
    FinishReason,
    Message,
    Model,
    ModelError,
    ModelRequest,
    ModelResponse,
    StreamingModel,
    TextDelta,
    Tool,
    ToolCall,
    ToolResult,
    ToolSpec,
    Usage,
    WorkspaceBinding,
)
from chat_mcp_primer.runtime import ChatRuntime, RuntimeClosedError, TurnResult, Workspaces, WorkspacesFrom
from chat_mcp_primer.tools import CoderWorkspaces
from chat_mcp_primer.workspace import AgentMcp, InMemoryWorkspaces, McpEndpoint, WorkspaceMcpSource
from chat_mcp_primer.workspace.coder import CoderBackend, CoderClient, CoderError, CoderSettings, ReadinessSettings
from chat_mcp_primer.workspace_mcp import (
    ListingLimits,
    MemoryToolCache,
    PrimerSettings,
    SessionError,
    SessionSettings,
    ToolCache,
    TurnWorkspace,
)

__all__ = [
    "AgentMcp",
    "Attachment",
    "Chat",
    "ChatMcpPrimerError",
    "ChatRuntime",
    "Clock",
    "CoderBackend",
    "CoderClient",
    "CoderError",
    "CoderSettings",
    "CoderWorkspaces",
    "Event",
    "EventName",
    "FinishReason",
    "InMemoryWorkspaces",
    "ListingLimits",
    "McpEndpoint",
    "MemoryToolCache",
    "Message",
    "Model",
    "ModelError",
    "ModelRequest",
    "ModelResponse",
    "PrimerSettings",
    "ReadinessSettings",
    "RuntimeClosedError",
    "SessionError",
    "SessionSettings",
    "StopReason",
    "StreamingModel",
    "SystemClock",
    "TextDelta",
    "Tool",
    "ToolArgumentError",
    "ToolCache",
    "ToolCall",
    "ToolResult",
    "ToolResultLimits",
    "ToolSpec",
    "TurnResult",
    "TurnWorkspace",
    "Usage",
    "WorkspaceBinding",
    "WorkspaceMcpSource",
    "Workspaces",
    "WorkspacesFrom",
]
