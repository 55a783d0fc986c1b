"""The workspace lifecycle tools a model uses to provision its chat's workspace, one module per tool."""

from __future__ import annotations

import anyio

from chat_mcp_primer.model import Tool
from chat_mcp_primer.tools._base import LifecycleTool, ToolContext
from chat_mcp_primer.tools._workspaces import CoderWorkspaces
from chat_mcp_primer.tools.create_workspace import CreateWorkspace
from chat_mcp_primer.tools.list_templates import ListTemplates
from chat_mcp_primer.tools.restart_workspace import RestartWorkspace
from chat_mcp_primer.tools.start_workspace import StartWorkspace
from chat_mcp_primer.tools.stop_workspace import StopWorkspace
from chat_mcp_primer.tools.update_workspace import UpdateWorkspace
from chat_mcp_primer.workspace.coder import CoderBackend
from chat_mcp_primer.workspace_mcp import TurnWorkspace

LIFECYCLE_TOOLS: tuple[type[LifecycleTool], ...] = (
    ListTemplates,
    CreateWorkspace,
    StartWorkspace,
    StopWorkspace,
    RestartWorkspace,
    UpdateWorkspace,
)


class CoderWorkspaceTools:
    """Builds a turn's workspace lifecycle tools: ``ChatRuntime(workspace_tools=CoderWorkspaceTools(backend))``.

    The tools of one chat are serialised by a lock per chat that outlives turns, so two concurrent turns
    of the same chat never build its workspace twice.
    """

    def __init__(self, backend: CoderBackend) -> None:
        self.backend = backend
        self._locks: dict[str, anyio.Lock] = {}

    def __call__(self, turn: TurnWorkspace) -> list[Tool]:
        lock = self._locks.setdefault(turn.chat_id, anyio.Lock())
        context = ToolContext(backend=self.backend, turn=turn, lock=lock)
        return [tool(context) for tool in LIFECYCLE_TOOLS]


__all__ = [
    "LIFECYCLE_TOOLS",
    "CoderWorkspaceTools",
    "CoderWorkspaces",
    "CreateWorkspace",
    "LifecycleTool",
    "ListTemplates",
    "RestartWorkspace",
    "StartWorkspace",
    "StopWorkspace",
    "ToolContext",
    "UpdateWorkspace",
]
