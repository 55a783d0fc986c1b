"""What the shared cache keeps in Redis and says on its channel, as bytes, read back within bounds.

A catalogue is stored as written by a replica, but Redis is shared: whatever is read back is checked for
size before it is parsed and for shape after, and anything else reads as no entry at all.
"""

from __future__ import annotations

import json
from typing import Any

from chat_mcp_primer.workspace_mcp import CacheKey, CacheNews, NewsKind, RemoteTool

# The kind of the message that ends a lease, and what the replica's listing gave.
LISTING_ENDED = "listing_ended"
LISTED = "listed"
FAILED = "failed"
NOT_CACHED = "not_cached"  # it listed nothing, or what it listed was overtaken: the others list themselves
# A failure's reason, as passed on: the reasons discovery gives are a line; a message stays small.
MAX_REASON_CHARS = 500


def encode_catalogue(tools: tuple[RemoteTool, ...]) -> bytes:
    rows = [[tool.server, tool.name, tool.description, tool.input_schema, tool.run_id] for tool in tools]
    return json.dumps(rows, separators=(",", ":")).encode()


def _tool(row: Any) -> RemoteTool | None:
    if not isinstance(row, list) or len(row) != 5:
        return None
    server, name, description, schema, run_id = row
    if not (isinstance(server, str) and isinstance(name, str) and isinstance(description, str)):
        return None
    if not isinstance(schema, dict) or not (run_id is None or isinstance(run_id, str)):
        return None
    return RemoteTool(server, name, description, schema, run_id)


def decode_catalogue(raw: bytes, max_bytes: int) -> tuple[RemoteTool, ...] | None:
    """The tools in ``raw``, or None when it is too large, not a catalogue, or empty."""
    if len(raw) > max_bytes:
        return None
    try:
        rows = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(rows, list):
        return None
    tools = tuple(tool for tool in map(_tool, rows) if tool is not None)
    return tools if tools and len(tools) == len(rows) else None


def encode_key(key: CacheKey) -> str:
    """One key as a string no other key gives (the ids may hold any character)."""
    return json.dumps([key.workspace_id, key.agent_id, key.server], separators=(",", ":"))


def encode_workspace(workspace_id: str) -> str:
    return json.dumps(workspace_id)


def decode_key(text: Any) -> CacheKey | None:
    try:
        parts = json.loads(text)
    except (TypeError, ValueError):
        return None
    if isinstance(parts, list) and len(parts) == 3 and all(isinstance(part, str) for part in parts):
        return CacheKey(*parts)
    return None


def encode_news(origin: str, news: CacheNews) -> bytes:
    message = {"o": origin, "k": news.kind.value, "w": news.workspace_id, "a": news.agent_id, "s": news.server}
    return json.dumps(message, separators=(",", ":")).encode()


def encode_listing_end(origin: str, key: CacheKey, outcome: str, reason: str | None, *, final: bool) -> bytes:
    message = {
        "o": origin,
        "k": LISTING_ENDED,
        "key": encode_key(key),
        "outcome": outcome,
        "reason": reason[:MAX_REASON_CHARS] if reason else None,
        "final": final,
    }
    return json.dumps(message, separators=(",", ":")).encode()


def decode_message(raw: Any, max_bytes: int) -> dict[str, Any] | None:
    """A channel message as a dict with a string origin ``o`` and kind ``k``, or None."""
    if not isinstance(raw, bytes | str) or len(raw) > max_bytes:
        return None
    try:
        message = json.loads(raw)
    except ValueError:
        return None
    if isinstance(message, dict) and isinstance(message.get("o"), str) and isinstance(message.get("k"), str):
        return message
    return None


def news_of(message: dict[str, Any]) -> CacheNews | None:
    try:
        kind = NewsKind(message["k"])
    except ValueError:
        return None
    workspace, agent, server = message.get("w"), message.get("a"), message.get("s")
    if not isinstance(workspace, str) or not all(part is None or isinstance(part, str) for part in (agent, server)):
        return None
    return CacheNews(kind, workspace, agent, server)
