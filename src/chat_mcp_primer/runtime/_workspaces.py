"""Where a runtime's chats get their workspaces: the source discovery asks, and the tools that provision."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from chat_mcp_primer.model import Tool, WorkspaceBinding
from chat_mcp_primer.workspace import AgentMcp, WorkspaceMcpSource
from chat_mcp_primer.workspace_mcp import TurnWorkspace

WorkspaceToolsFactory = Callable[[TurnWorkspace], Sequence[Tool]]
"""Builds the workspace-provisioning tools of one turn, bound to that turn's `TurnWorkspace`."""


class Workspaces(Protocol):
    """A runtime's workspaces, given once: ``ChatRuntime(model, workspaces=CoderWorkspaces(backend))``.

    ``source`` tells discovery which agent and MCP endpoints a chat's workspace has; the tools of
    `provisioning_tools` create and start them, and report to the turn as they go. Both come from one
    object, so the tools can never act on other workspaces than the ones discovery looks at.
    """

    @property
    def source(self) -> WorkspaceMcpSource: ...

    def provisioning_tools(self, turn: TurnWorkspace) -> Sequence[Tool]:
        """The tools of one turn of a root chat, bound to ``turn``."""
        ...


@dataclass(frozen=True, slots=True)
class WorkspacesFrom:
    """Any `WorkspaceMcpSource` (`InMemoryWorkspaces`, one of your own) and the tools that provision its
    workspaces, if any: without them, chats bound to a workspace still get its MCP tools."""

    source: WorkspaceMcpSource
    tools: WorkspaceToolsFactory | None = None

    def provisioning_tools(self, turn: TurnWorkspace) -> Sequence[Tool]:
        return self.tools(turn) if self.tools is not None else ()


class NoWorkspaces:
    """The source of a runtime without workspaces: no chat ever has an agent."""

    async def current_agent(self, binding: WorkspaceBinding) -> AgentMcp | None:
        return None

    async def changes(self, binding: WorkspaceBinding) -> AsyncIterator[str]:
        return
        yield  # an async generator that ends at once: nothing ever changes
