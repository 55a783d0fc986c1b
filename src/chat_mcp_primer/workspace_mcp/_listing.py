from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jsonschema
import mcp_types

from chat_mcp_primer.events import EventName, Events
from chat_mcp_primer.workspace_mcp._settings import ListingLimits


@dataclass(frozen=True, slots=True)
class RemoteTool:
    """A tool as a workspace MCP server listed it, after checks: its original name and schema."""

    server: str
    name: str
    description: str
    input_schema: Mapping[str, Any]
    # The run of the server's discovery report it was listed in, when the server publishes reports: a
    # later run (the gateway restarted) withholds it until that run lists it again.
    run_id: str | None = None


def _schema_problem(schema: Mapping[str, Any], max_bytes: int, checked: dict[str, str | None]) -> str | None:
    """What makes ``schema`` unusable, or None. ``checked`` remembers the verdicts of one listing by
    serialised schema: servers often give many tools the same schema, and a check costs about a
    millisecond (a 10,000-tool listing would otherwise spend seconds here)."""
    if schema.get("type") != "object":
        return "input schema is not of type object"
    try:
        serialised = json.dumps(schema, sort_keys=True)
    except (TypeError, ValueError):
        return "input schema is not JSON"
    if serialised in checked:
        return checked[serialised]
    problem: str | None = None
    if len(serialised) > max_bytes:
        problem = f"input schema is {len(serialised)} bytes, over the {max_bytes} byte limit"
    else:
        try:
            jsonschema.validators.validator_for(schema).check_schema(dict(schema))
        except jsonschema.SchemaError as exc:
            problem = f"input schema is invalid: {exc.message[:200]}"
    checked[serialised] = problem
    return problem


def clean_listing(
    server: str, listed: Sequence[mcp_types.Tool], limits: ListingLimits, events: Events, run_id: str | None = None
) -> tuple[RemoteTool, ...]:
    """Keep the usable tools of a listing, in order; say, with an event, why any other was dropped.

    A tool with no name, a repeated name, or an unusable input schema is skipped; an overlong
    description is truncated. The rest of the listing is kept: one bad tool never hides the others.
    """
    kept: list[RemoteTool] = []
    seen: set[str] = set()
    checked: dict[str, str | None] = {}
    for tool in listed:
        name = tool.name
        if not name or not name.strip():
            events.emit(EventName.DISCOVERY_TOOL_SKIPPED, server=server, tool=name, reason="no name")
            continue
        if name in seen:
            events.emit(EventName.DISCOVERY_TOOL_SKIPPED, server=server, tool=name, reason="duplicate name")
            continue
        problem = _schema_problem(tool.input_schema, limits.max_schema_bytes, checked)
        if problem is not None:
            events.emit(EventName.DISCOVERY_TOOL_SKIPPED, server=server, tool=name, reason=problem)
            continue
        description = tool.description or tool.title or ""
        if len(description) > limits.max_description_chars:
            events.emit(EventName.DISCOVERY_DESCRIPTION_TRUNCATED, server=server, tool=name, length=len(description))
            description = description[: limits.max_description_chars]
        seen.add(name)
        kept.append(RemoteTool(server, name, description, tool.input_schema, run_id))
    return tuple(kept)
