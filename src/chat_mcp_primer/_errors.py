"""The root of every exception the library raises on purpose.

Catch `ChatMcpPrimerError` to handle anything the library reports; the tree, as httpx draws its own::

    ChatMcpPrimerError
    ├── RuntimeClosedError        the ChatRuntime is closed, or was closed during the turn
    ├── SessionError              a workspace MCP session could not be opened, or was lost
    ├── ToolArgumentError         a model called a built-in tool with arguments it cannot take
    ├── ModelError                a model's provider refused or failed a request (chat_mcp_primer.model)
    │   ├── ModelAuthenticationError, ModelRateLimitedError, ModelContextTooLongError
    │   └── ModelUnavailableError, ModelRequestError
    ├── ModelSpecError            a model spec (openai:<model>) cannot be built (chat_mcp_primer.models; a ValueError)
    └── CoderError                any failure talking to Coder (chat_mcp_primer.workspace.coder)
        ├── CoderTransportError, CoderProtocolError, CoderServerError
        ├── CoderAuthError, CoderPermissionError, CoderNotFoundError, CoderWorkspaceDeletedError
        ├── CoderConflictError
        │   └── BuildActiveError
        ├── CoderValidationError, TemplateVersionImportingError, AgentSelectionError
        └── BuildError
            ├── BuildFailedError, BuildCanceledError
            └── BuildTimeoutError (also a TimeoutError)

A tool's failure during a turn never raises: the model gets it as a tool result. These reach the caller
of the library's own functions (`CoderClient`, `ChatRuntime.run_turn`) and of the model adapters.
"""

from __future__ import annotations


class ChatMcpPrimerError(Exception):
    """Anything the library reports by raising. Its text never holds a secret."""


class ToolArgumentError(ChatMcpPrimerError):
    """A model called a built-in tool with an argument it cannot take; the text says which and why."""
