"""Workspaces as the library sees them: which agent a chat's workspace runs and the MCP endpoints it exposes."""

from chat_mcp_primer.workspace._endpoints import AgentMcp, EndpointHealth, McpEndpoint, origin_of
from chat_mcp_primer.workspace._memory import InMemoryWorkspaces
from chat_mcp_primer.workspace._source import WorkspaceMcpSource

__all__ = [
    "AgentMcp",
    "EndpointHealth",
    "InMemoryWorkspaces",
    "McpEndpoint",
    "WorkspaceMcpSource",
    "origin_of",
]
