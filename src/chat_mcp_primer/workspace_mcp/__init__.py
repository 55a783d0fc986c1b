"""Workspace MCP: sessions to the MCP servers inside a workspace, discovery, the tool cache and the primer."""

from chat_mcp_primer.workspace_mcp._cache import CacheKey, MemoryToolCache, ToolCache
from chat_mcp_primer.workspace_mcp._discovery import Discovery, DiscoveryResult, Outcome
from chat_mcp_primer.workspace_mcp._failures import SessionError
from chat_mcp_primer.workspace_mcp._hub import WorkspaceMcpHub
from chat_mcp_primer.workspace_mcp._listing import RemoteTool
from chat_mcp_primer.workspace_mcp._naming import ToolNames
from chat_mcp_primer.workspace_mcp._primer import RETRY_TAGS, PrimerEnd, PrimerReport, run_primer
from chat_mcp_primer.workspace_mcp._proxy import WorkspaceMcpTool, convert_result
from chat_mcp_primer.workspace_mcp._sessions import DIAL_TAGS, McpSession, McpSessions
from chat_mcp_primer.workspace_mcp._settings import McpMode, PrimerSettings, Strategy
from chat_mcp_primer.workspace_mcp._turn import TurnWorkspace

__all__ = [
    "DIAL_TAGS",
    "RETRY_TAGS",
    "CacheKey",
    "Discovery",
    "DiscoveryResult",
    "McpMode",
    "McpSession",
    "McpSessions",
    "MemoryToolCache",
    "Outcome",
    "PrimerEnd",
    "PrimerReport",
    "PrimerSettings",
    "RemoteTool",
    "SessionError",
    "Strategy",
    "ToolCache",
    "ToolNames",
    "TurnWorkspace",
    "WorkspaceMcpHub",
    "WorkspaceMcpTool",
    "convert_result",
    "run_primer",
]
