"""A discovery report: what the workspace side says of each MCP server behind an endpoint, read as
untrusted input.

The workspace gateway (``chat-mcp-primer gateway``) publishes one beside its MCP endpoint::

    {"run_id": "...", "phase": "pending" | "complete",
     "servers": {"<name>": {"status": "starting" | "ok" | "empty" | "failed", "tools": 3, "reason": null}}}

``phase`` is ``pending`` until every declared server was tried once; ``run_id`` changes when the gateway
restarts. Everything in it came from the workspace: the body is bounded before it is parsed, the number of
servers is bounded, and names and reasons are cut to one printable line of bounded length before they are
kept, so a report can neither exhaust memory nor put anything but a short sentence in front of the model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from chat_mcp_primer.workspace_mcp._settings import ListingLimits

# Anything that is not a printable character of one line: control characters, line and paragraph breaks.
_NOT_ONE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_ELLIPSIS = "…"


class ReportPhase(StrEnum):
    PENDING = "pending"  # not every declared server was tried yet
    COMPLETE = "complete"  # every declared server was tried at least once


class ServerStatus(StrEnum):
    STARTING = "starting"
    OK = "ok"  # up, with tools
    EMPTY = "empty"  # up, with no tools
    FAILED = "failed"  # did not start, crashed, or its entry in the configuration is invalid


@dataclass(frozen=True, slots=True)
class ServerReport:
    status: ServerStatus
    tools: int
    reason: str | None


@dataclass(frozen=True, slots=True)
class DiscoveryReport:
    run_id: str
    phase: ReportPhase
    servers: Mapping[str, ServerReport]

    @property
    def complete(self) -> bool:
        return self.phase is ReportPhase.COMPLETE

    @property
    def confirmed_empty(self) -> bool:
        """Every declared server was tried, and none has a tool: nothing to list, now or by waiting."""
        return self.complete and not any(server.tools for server in self.servers.values())

    def missing(self) -> dict[str, ServerReport]:
        """The servers that failed or have no tools, by name, once each was tried."""
        missing = (ServerStatus.FAILED, ServerStatus.EMPTY)
        return {name: server for name, server in self.servers.items() if server.status in missing}


class ReportError(ValueError):
    """The body is not a discovery report (too large, not JSON, or not of its shape)."""


def one_line(text: str, max_chars: int) -> str:
    """``text`` as one printable line of at most ``max_chars`` characters (an ellipsis marks a cut)."""
    line = " ".join(_NOT_ONE_LINE.sub(" ", text).split())
    return line if len(line) <= max_chars else line[: max(max_chars - 1, 0)] + _ELLIPSIS


def parse_report(body: bytes, limits: ListingLimits) -> DiscoveryReport:
    """``body`` as a `DiscoveryReport`, or `ReportError` saying what is wrong with it."""
    if len(body) > limits.max_report_bytes:
        raise ReportError(f"the report is over {limits.max_report_bytes} bytes")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ReportError("the report is not JSON") from None
    if not isinstance(data, dict):
        raise ReportError("the report is not a JSON object")
    run_id, phase, servers = data.get("run_id"), data.get("phase"), data.get("servers")
    if not isinstance(run_id, str) or not run_id:
        raise ReportError("the report has no run_id")
    try:
        parsed_phase = ReportPhase(str(phase))
    except ValueError:
        raise ReportError("the report's phase is neither 'pending' nor 'complete'") from None
    if not isinstance(servers, dict):
        raise ReportError("the report's servers are not a JSON object")
    if len(servers) > limits.max_report_servers:
        raise ReportError(f"the report names more than {limits.max_report_servers} servers")
    kept = {
        one_line(str(name), limits.max_report_text_chars): _server(entry, limits) for name, entry in servers.items()
    }
    return DiscoveryReport(one_line(run_id, limits.max_report_text_chars), parsed_phase, MappingProxyType(kept))


def _server(entry: object, limits: ListingLimits) -> ServerReport:
    if not isinstance(entry, dict):
        raise ReportError("a server of the report is not a JSON object")
    try:
        status = ServerStatus(str(entry.get("status")))
    except ValueError:
        raise ReportError("a server of the report has an unknown status") from None
    tools, reason = entry.get("tools", 0), entry.get("reason")
    if isinstance(tools, bool) or not isinstance(tools, int) or tools < 0:
        raise ReportError("a server of the report has no tool count")
    if reason is not None and not isinstance(reason, str):
        raise ReportError("a server of the report has a reason that is not text")
    text = one_line(reason, limits.max_report_text_chars) if reason else None
    return ServerReport(status, tools, text)
