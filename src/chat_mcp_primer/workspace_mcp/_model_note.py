"""The note that tells the model which workspace MCP servers failed or offer no tools, and why."""

from __future__ import annotations

from collections.abc import Sequence

from chat_mcp_primer.workspace_mcp._discovery import MissingServer
from chat_mcp_primer.workspace_mcp._report import ServerStatus


def missing_servers_note(missing: Sequence[MissingServer], max_servers: int) -> str | None:
    """One sentence naming the servers (at most ``max_servers``; the rest counted), or None for none.

    Names and reasons were cut to one short line when the report was read: the note stays short and
    carries no more of the workspace's text than that."""
    if not missing:
        return None
    named = [_describe(server) for server in missing[:max_servers]]
    if len(missing) > max_servers:
        named.append(f"{len(missing) - max_servers} more")
    return (
        "Some MCP servers in the workspace offer no tools, so their tools are missing: "
        + "; ".join(named)
        + ". Tell the user if the task needs them."
    )


def _describe(server: MissingServer) -> str:
    what = "failed" if server.status is ServerStatus.FAILED else "no tools"
    return f"{server.name} ({what}: {server.reason})" if server.reason else f"{server.name} ({what})"
