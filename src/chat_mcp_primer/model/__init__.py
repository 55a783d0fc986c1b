"""Pure data for a conversation: messages, tool specs, calls and results, the `Model` and `Tool` seams."""

from chat_mcp_primer.model._chat import Chat, WorkspaceBinding
from chat_mcp_primer.model._errors import (
    ModelAuthenticationError,
    ModelContextTooLongError,
    ModelError,
    ModelRateLimitedError,
    ModelRequestError,
    ModelUnavailableError,
)
from chat_mcp_primer.model._messages import Attachment, Message, Role, ToolCall, ToolResult, ToolSpec
from chat_mcp_primer.model._model import (
    FinishReason,
    LimitedModel,
    Model,
    ModelLimits,
    ModelRequest,
    ModelResponse,
    ModelStreamItem,
    StreamingModel,
    TextDelta,
    Usage,
)
from chat_mcp_primer.model._tool import Tool

__all__ = [
    "Attachment",
    "Chat",
    "FinishReason",
    "LimitedModel",
    "Message",
    "Model",
    "ModelAuthenticationError",
    "ModelContextTooLongError",
    "ModelError",
    "ModelLimits",
    "ModelRateLimitedError",
    "ModelRequest",
    "ModelRequestError",
    "ModelResponse",
    "ModelStreamItem",
    "ModelUnavailableError",
    "Role",
    "StreamingModel",
    "TextDelta",
    "Tool",
    "ToolCall",
    "ToolResult",
    "ToolSpec",
    "Usage",
    "WorkspaceBinding",
]
