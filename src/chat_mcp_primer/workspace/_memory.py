from __future__ import annotations

from chat_mcp_primer.model import WorkspaceBinding
from chat_mcp_primer.workspace._endpoints import AgentMcp, McpEndpoint


class InMemoryWorkspaces:
    """A `WorkspaceMcpSource` held in memory: for tests, and for deployments with fixed MCP endpoints."""

    def __init__(self) -> None:
        self._agents: dict[str, AgentMcp | None] = {}
        self.lookups = 0

    def set_agent(self, workspace_id: str, agent_id: str, endpoints: tuple[McpEndpoint, ...] = ()) -> AgentMcp:
        """Make ``agent_id`` the workspace's current agent (a rebuild gives a new id), exposing ``endpoints``."""
        agent = AgentMcp(workspace_id=workspace_id, agent_id=agent_id, endpoints=endpoints)
        self._agents[workspace_id] = agent
        return agent

    def stop(self, workspace_id: str) -> None:
        """The workspace keeps existing but has no agent."""
        self._agents[workspace_id] = None

    async def current_agent(self, binding: WorkspaceBinding) -> AgentMcp | None:
        self.lookups += 1
        return self._agents.get(binding.workspace_id)
