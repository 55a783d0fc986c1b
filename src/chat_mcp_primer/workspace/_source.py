from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from chat_mcp_primer.model import WorkspaceBinding
from chat_mcp_primer.workspace._endpoints import AgentMcp


class WorkspaceMcpSource(Protocol):
    """Tells discovery which agent a chat's workspace runs now, which MCP endpoints it exposes, and when
    the workspace changed in a way that may make tools reachable."""

    async def current_agent(self, binding: WorkspaceBinding) -> AgentMcp | None:
        """The workspace's current agent, or None when it has none (stopped, deleted, still building).

        May raise on transport failures; discovery turns any exception into "no tools this time".
        """
        ...

    def changes(self, binding: WorkspaceBinding) -> AsyncIterator[str]:
        """Yields a short reason for each change of the workspace (agent state, an app turning healthy), for
        as long as the caller iterates: the primed primer then ends its pause early. A source that cannot
        tell ends at once (an async generator that returns before its first ``yield``)."""
        ...
