from __future__ import annotations

from collections.abc import AsyncIterator

import anyio

from chat_mcp_primer.model import WorkspaceBinding
from chat_mcp_primer.workspace._endpoints import AgentMcp, McpEndpoint


class InMemoryWorkspaces:
    """A `WorkspaceMcpSource` held in memory: for tests, and for deployments with fixed MCP endpoints."""

    def __init__(self) -> None:
        self._agents: dict[str, AgentMcp | None] = {}
        self._changed: dict[str, anyio.Event] = {}
        self.lookups = 0

    def set_agent(self, workspace_id: str, agent_id: str, endpoints: tuple[McpEndpoint, ...] = ()) -> AgentMcp:
        """Make ``agent_id`` the workspace's current agent (a rebuild gives a new id), exposing ``endpoints``."""
        agent = AgentMcp(workspace_id=workspace_id, agent_id=agent_id, endpoints=endpoints)
        self._agents[workspace_id] = agent
        self._notify(workspace_id)
        return agent

    def stop(self, workspace_id: str) -> None:
        """The workspace keeps existing but has no agent."""
        self._agents[workspace_id] = None
        self._notify(workspace_id)

    def _notify(self, workspace_id: str) -> None:
        changed = self._changed.pop(workspace_id, None)
        if changed is not None:
            changed.set()

    async def changes(self, binding: WorkspaceBinding) -> AsyncIterator[str]:
        """Yields each time the workspace's agent or endpoints are set again (a readiness signal)."""
        while True:
            changed = self._changed.setdefault(binding.workspace_id, anyio.Event())
            await changed.wait()
            yield "workspace changed"

    async def current_agent(self, binding: WorkspaceBinding) -> AgentMcp | None:
        self.lookups += 1
        return self._agents.get(binding.workspace_id)
