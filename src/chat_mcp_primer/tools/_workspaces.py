"""Coder's workspaces for a runtime: the backend discovery asks and the lifecycle tools, given once."""

from __future__ import annotations

from collections.abc import Sequence

from chat_mcp_primer.model import Tool
from chat_mcp_primer.workspace.coder import CoderBackend
from chat_mcp_primer.workspace_mcp import TurnWorkspace


class CoderWorkspaces:
    """``ChatRuntime(model, workspaces=CoderWorkspaces(backend))``: discovery reads ``backend``'s agents
    and MCP apps, and root chats get the lifecycle tools acting on the same deployment."""

    def __init__(self, backend: CoderBackend) -> None:
        from chat_mcp_primer.tools import CoderWorkspaceTools

        self.source = backend
        self._tools = CoderWorkspaceTools(backend)

    def provisioning_tools(self, turn: TurnWorkspace) -> Sequence[Tool]:
        return self._tools(turn)
