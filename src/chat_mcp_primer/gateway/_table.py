"""The gateway's one view of its servers: each one's outcome, its tools and how to call them.

Supervisors write their own server's line; the MCP endpoint reads the aggregated listing and routes calls;
``GET /discovery`` reads the report. Whenever the aggregated listing changes (a server came up, went down,
listed different tools, was added or removed), the listing's version goes up and its waiters wake: that is
what sends ``tools/list_changed`` to the gateway's clients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import anyio
import mcp_types

from chat_mcp_primer.gateway._report import DiscoveryReport, ServerOutcome, Status

# Between server and tool in an exposed name, as Coder's agent joins them.
TOOL_SEPARATOR = "__"


class ToolCaller(Protocol):
    """How a call reaches a live server (its supervisor's session)."""

    async def call(self, tool: str, arguments: dict[str, Any]) -> mcp_types.CallToolResult:
        """Call the server's ``tool``; failures come back as error results, never raised."""
        ...


@dataclass(frozen=True, slots=True)
class ServerLine:
    """What the table holds for one server. ``tools`` and ``caller`` are set only while it is up."""

    outcome: ServerOutcome
    tools: tuple[mcp_types.Tool, ...] = ()
    caller: ToolCaller | None = None


@dataclass(frozen=True, slots=True)
class Route:
    """Where an exposed tool name leads: the server's caller and the tool's own name there."""

    server: str
    tool: str
    caller: ToolCaller


def exposed_name(server: str, tool: str) -> str:
    return f"{server}{TOOL_SEPARATOR}{tool}"


class ServerTable:
    """The servers' lines, keyed by name, in the order they were declared.

    A line is written only by its owner (the token `declare` was given), so a supervisor that was replaced
    (its entry changed) or stopped cannot overwrite its successor's news while it winds down.
    """

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._lines: dict[str, ServerLine] = {}
        self._owners: dict[str, object] = {}
        self._listing: tuple[mcp_types.Tool, ...] = ()
        self._routes: dict[str, Route] = {}
        self.listing_version = 0
        self._listing_changed = anyio.Event()
        # Bumped by every change of any line: a server declared, tried, up, down, removed.
        self.report_version = 0
        self._report_changed = anyio.Event()
        # Set when the gateway stops: whoever waits on the report goes on at once.
        self._stopping = False

    # -- writing ------------------------------------------------------------------------------------

    def declare(self, name: str, owner: object) -> None:
        """``name`` is (again) a server to try, owned by ``owner`` from now: ``starting``, no tools."""
        self._owners[name] = owner
        self._lines[name] = ServerLine(ServerOutcome(Status.STARTING))
        self._changed()

    def declare_invalid(self, name: str, reason: str) -> None:
        """``name`` is an entry that was skipped: ``failed`` with its reason, owned by nobody."""
        self._owners.pop(name, None)
        self._lines[name] = ServerLine(ServerOutcome(Status.FAILED, reason=reason))
        self._changed()

    def remove(self, name: str) -> None:
        self._owners.pop(name, None)
        if self._lines.pop(name, None) is not None:
            self._changed()

    def update(self, name: str, owner: object, line: ServerLine) -> bool:
        """Write ``name``'s line if ``owner`` still owns it; False (nothing written) otherwise."""
        if self._owners.get(name) is not owner:
            return False
        self._lines[name] = line
        self._changed()
        return True

    def _changed(self) -> None:
        self.report_version += 1
        self._report_changed.set()
        self._report_changed = anyio.Event()
        listing: list[mcp_types.Tool] = []
        routes: dict[str, Route] = {}
        for server, line in self._lines.items():
            if line.caller is None:
                continue
            for tool in line.tools:
                name = exposed_name(server, tool.name)
                if name in routes:
                    continue  # two tools of one server cannot share a name; the first listed wins
                routes[name] = Route(server, tool.name, line.caller)
                listing.append(tool.model_copy(update={"name": name}))
        if tuple(listing) != self._listing:
            self._listing = tuple(listing)
            self._routes = routes
            self.listing_version += 1
            self._listing_changed.set()
            self._listing_changed = anyio.Event()
        else:
            self._routes = routes

    # -- reading ------------------------------------------------------------------------------------

    @property
    def listing(self) -> tuple[mcp_types.Tool, ...]:
        """Every live server's tools under their exposed names, servers in declaration order."""
        return self._listing

    def route(self, name: str) -> Route | None:
        return self._routes.get(name)

    def line(self, name: str) -> ServerLine | None:
        return self._lines.get(name)

    def report(self) -> DiscoveryReport:
        return DiscoveryReport(self.run_id, {name: line.outcome for name, line in self._lines.items()})

    async def wait_listing_changed(self, seen_version: int) -> int:
        """Wait until the listing's version is past ``seen_version``; return the version now."""
        while self.listing_version <= seen_version:
            await self._listing_changed.wait()
        return self.listing_version

    async def wait_report_changed(self) -> None:
        """Wait for the next change of any line (tests and clients waiting on the report use it)."""
        await self._report_changed.wait()

    async def wait_report_version(self, seen_version: int) -> int:
        """Wait until the report's version is past ``seen_version``, or the gateway stops; return the version."""
        while self.report_version <= seen_version and not self._stopping:
            await self._report_changed.wait()
        return self.report_version

    def stop_waits(self) -> None:
        """The gateway stops: every wait on the report ends now (a held read of it is answered), instead of
        being cut off at the end of the server's grace."""
        self._stopping = True
        self._report_changed.set()
