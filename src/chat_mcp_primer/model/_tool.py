from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from chat_mcp_primer.model._messages import ToolResult, ToolSpec


class Tool(Protocol):
    """Something the model can call.

    ``call`` receives the decoded JSON object the model sent. It should return failures as results
    (``ToolResult.error``); an exception it raises still reaches the model, as an error result.
    """

    @property
    def spec(self) -> ToolSpec: ...

    async def call(self, arguments: Mapping[str, Any]) -> ToolResult: ...
