"""Workspace MCP: sessions to the MCP servers inside a workspace, discovery, the tool cache and the primer.

Public here: what a backend configures (the settings, the cache) and what a turn hands it (`TurnWorkspace`,
the primer's reports). The machinery (sessions, discovery, the hub, the buses) lives in private modules.
"""

from chat_mcp_primer.workspace_mcp._cache import (
    CacheKey,
    CacheNews,
    ListedElsewhere,
    MemoryToolCache,
    NewsKind,
    SharedListing,
    SharedToolCache,
    ToolCache,
)
from chat_mcp_primer.workspace_mcp._discovery import DiscoveryResult, Outcome
from chat_mcp_primer.workspace_mcp._failures import SessionError
from chat_mcp_primer.workspace_mcp._listing import RemoteTool
from chat_mcp_primer.workspace_mcp._primer import PrimerEnd, PrimerReport
from chat_mcp_primer.workspace_mcp._settings import ListingLimits, McpMode, PrimerSettings, SessionSettings, Strategy
from chat_mcp_primer.workspace_mcp._turn import TurnWorkspace

__all__ = [
    "CacheKey",
    "CacheNews",
    "DiscoveryResult",
    "ListedElsewhere",
    "ListingLimits",
    "McpMode",
    "MemoryToolCache",
    "NewsKind",
    "Outcome",
    "PrimerEnd",
    "PrimerReport",
    "PrimerSettings",
    "RemoteTool",
    "SessionError",
    "SessionSettings",
    "SharedListing",
    "SharedToolCache",
    "Strategy",
    "ToolCache",
    "TurnWorkspace",
]
