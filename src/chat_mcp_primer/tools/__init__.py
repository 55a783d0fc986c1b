"""The workspace lifecycle tools a model uses to provision its chat's workspace, one module per tool.

Each tool is an adapter over `CoderLifecycle`: it parses its arguments, runs the operation and renders the
outcome (`render_outcome`). ``serve-mcp`` renders with the same functions and describes its tools with the
same texts (`describe`), for a workspace named by id or name (`NAMED`) instead of the chat's (`CHAT`).
"""

from __future__ import annotations

from chat_mcp_primer.model import Tool
from chat_mcp_primer.tools._base import LifecycleTool, ToolContext, TurnObserver, parameter_value
from chat_mcp_primer.tools._render import Result, render_in_progress, render_outcome, render_status, render_templates
from chat_mcp_primer.tools.create_workspace import CreateWorkspace
from chat_mcp_primer.tools.descriptions import CHAT, NAMED, Subject, describe
from chat_mcp_primer.tools.list_templates import ListTemplates
from chat_mcp_primer.tools.restart_workspace import RestartWorkspace
from chat_mcp_primer.tools.start_workspace import StartWorkspace
from chat_mcp_primer.tools.stop_workspace import StopWorkspace
from chat_mcp_primer.tools.update_workspace import UpdateWorkspace
from chat_mcp_primer.workspace.coder import CoderBackend, CoderLifecycle, KeyedLocks
from chat_mcp_primer.workspace_mcp import TurnWorkspace

LIFECYCLE_TOOLS: tuple[type[LifecycleTool], ...] = (
    ListTemplates,
    CreateWorkspace,
    StartWorkspace,
    StopWorkspace,
    RestartWorkspace,
    UpdateWorkspace,
)


class CoderWorkspaces:
    """A Coder deployment's workspaces for a runtime, given once: ``ChatRuntime(model,
    workspaces=CoderWorkspaces(backend))``. Discovery reads ``backend``'s agents and MCP apps, and root
    chats get the lifecycle tools, acting on the same deployment (a `Workspaces`).

    The tools of one chat are serialised by a lock per chat shared by all its turns, so two concurrent
    turns of the same chat never build its workspace twice; a chat's lock is kept only while one of its
    tools runs or waits (`locks`).
    """

    def __init__(self, backend: CoderBackend) -> None:
        self.backend = backend
        self.lifecycle = CoderLifecycle(backend.client, backend.readiness, clock=backend.clock)
        self.locks = KeyedLocks()

    @property
    def source(self) -> CoderBackend:
        return self.backend

    def provisioning_tools(self, turn: TurnWorkspace) -> list[Tool]:
        """The lifecycle tools of one turn, bound to ``turn``."""
        context = ToolContext(backend=self.backend, lifecycle=self.lifecycle, turn=turn, locks=self.locks)
        return [tool(context) for tool in LIFECYCLE_TOOLS]


__all__ = [
    "CHAT",
    "LIFECYCLE_TOOLS",
    "NAMED",
    "CoderWorkspaces",
    "CreateWorkspace",
    "LifecycleTool",
    "ListTemplates",
    "RestartWorkspace",
    "Result",
    "StartWorkspace",
    "StopWorkspace",
    "Subject",
    "ToolContext",
    "TurnObserver",
    "UpdateWorkspace",
    "describe",
    "parameter_value",
    "render_in_progress",
    "render_outcome",
    "render_status",
    "render_templates",
]
