from __future__ import annotations

from typing import Protocol

from chat_mcp_primer.model import WorkspaceBinding
from chat_mcp_primer.workspace._endpoints import AgentMcp


class WorkspaceMcpSource(Protocol):
    """Tells discovery which agent a chat's workspace runs now, and which MCP endpoints it exposes."""

    async def current_agent(self, binding: WorkspaceBinding) -> AgentMcp | None:
        """The workspace's current agent, or None when it has none (stopped, deleted, still building).

        May raise on transport failures; discovery turns any exception into "no tools this time".
        """
        ...
