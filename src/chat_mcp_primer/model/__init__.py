"""Pure data for a conversation: messages, tool specs, calls and results, the `Model` and `Tool` seams."""

from chat_mcp_primer.model._chat import Chat, WorkspaceBinding
from chat_mcp_primer.model._messages import Attachment, Message, Role, ToolCall, ToolResult, ToolSpec
from chat_mcp_primer.model._model import Model, ModelRequest, ModelResponse
from chat_mcp_primer.model._tool import Tool

__all__ = [
    "Attachment",
    "Chat",
    "Message",
    "Model",
    "ModelRequest",
    "ModelResponse",
    "Role",
    "Tool",
    "ToolCall",
    "ToolResult",
    "ToolSpec",
    "WorkspaceBinding",
]
