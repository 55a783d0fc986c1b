"""The fault matrix, workspace MCP server side: whole turns over real loopback HTTP against a server that
misbehaves, on the fake clock.

Every row checks that the turn completes, what the model got (the tools, or a clear result it can act
on), that discovery stayed within its budget plus one attempt, that nothing empty or partial was cached,
and (with the `leaks` fixture) that no socket, task or MCP session was left behind.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from _harness import assert_never_offered, calls, run_fault_turn
from _mcp_faults import McpFaults

from chat_mcp_primer.testing import MockClock, ToolDef, WorkspaceMCPServer, echo_tools
from chat_mcp_primer.workspace import McpEndpoint
from chat_mcp_primer.workspace_mcp import ListingLimits, PrimerSettings

pytestmark = pytest.mark.anyio

SETTINGS = PrimerSettings()


@contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port bound but not listening, held for the block: connections to it are refused, and no
    other process on the machine can start listening there meanwhile (as a port merely found free could)."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield int(bound.getsockname()[1])


def held(faults: McpFaults, *waits: str) -> Callable[[tuple[str, ...]], bool]:
    """Timeouts of ``waits`` (dial, list, close) may expire while the server holds a request forever."""
    return lambda tags: faults.held > 0 and any(wait in tags for wait in waits)


@dataclass(frozen=True, slots=True)
class NeverLists:
    """A server fault that lasts the whole turn: the model must never be offered its tools."""

    id: str
    faults: Callable[[McpFaults], None] = lambda faults: None
    tools: tuple[ToolDef, ...] = tuple(echo_tools("search"))
    cursor_loop: bool = False
    expire: tuple[str, ...] = ()
    reason: str = ""


NEVER_LISTS = [
    NeverLists("accepts-never-answers", lambda f: f.hold(), expire=("dial", "list", "close"), reason="timed out"),
    NeverLists(
        "answers-after-discovery-timeout",
        lambda f: f.delay(ListingLimits().discovery_timeout + 5, method="tools/list"),
        expire=("list",),
        reason="timed out",
    ),
    NeverLists("http-401", lambda f: f.status(401), reason="HTTP error"),
    NeverLists("http-403", lambda f: f.status(403), reason="HTTP error"),
    NeverLists("malformed-json-rpc", lambda f: f.malformed(method="tools/list"), reason="not valid JSON-RPC"),
    NeverLists("cursor-loop", cursor_loop=True, reason="repeated a pagination cursor"),
    NeverLists(
        "invalid-tool-schemas",
        tools=(
            ToolDef("search", input_schema={"type": "array"}),
            ToolDef("find", input_schema={"type": "object", "properties": 5}),
        ),
    ),
]


@pytest.mark.parametrize("row", NEVER_LISTS, ids=lambda row: row.id)
async def test_a_server_that_never_lists_costs_the_budget_once_and_caches_nothing(
    clock: MockClock, row: NeverLists
) -> None:
    faults = McpFaults(clock)
    row.faults(faults)
    server = WorkspaceMCPServer(row.tools, name="docs", clock=clock, cursor_loop=row.cursor_loop, middleware=faults)
    with server:
        turn = await run_fault_turn(
            clock,
            [server.endpoint()],
            calls(clock, "docs__search"),
            expire=held(faults, *row.expire) if row.expire else None,
        )
        faults.clear()
        await server.wait_until_idle()

    assert_never_offered(turn)
    pages = 2 if row.cursor_loop else 1  # a looping cursor is caught on its second page
    assert server.list_calls <= faults.requests["tools/list"] <= pages * turn.listings
    if row.reason:
        reasons = {event.fields["reason"] for event in turn.events.named("discovery.server_failed")}
        assert any(row.reason in reason for reason in reasons), reasons


async def test_a_refused_connection_costs_the_budget_once_and_caches_nothing(clock: MockClock) -> None:
    with refusing_port() as port:
        endpoint = McpEndpoint(server="docs", url=f"http://127.0.0.1:{port}/mcp")
        turn = await run_fault_turn(clock, [endpoint], calls(clock, "docs__search"))
    assert_never_offered(turn)
    reasons = {event.fields["reason"] for event in turn.events.named("discovery.server_failed")}
    assert reasons == {"connection refused or unreachable"}


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_a_burst_of_server_errors_delays_the_tools_but_does_not_lose_them(clock: MockClock, status: int) -> None:
    faults = McpFaults(clock)
    faults.status(status, method="tools/list", count=3)
    with WorkspaceMCPServer(echo_tools("search"), name="docs", clock=clock, middleware=faults) as server:
        turn = await run_fault_turn(clock, [server.endpoint()], calls(clock, "docs__search"))
        await server.wait_until_idle()

    assert turn.result.stop_reason == "completed"
    assert turn.offered(1) == ["docs__search"]
    assert turn.result_of("docs__search").text == "search called with {}"
    turn.assert_discovery_bounded()
    assert faults.injected["tools/list"] == 3
    assert turn.listings == 4  # three refused by the burst, then the listing that found the tools
    cached = await turn.cached("docs")
    assert cached is not None
    assert [tool.name for tool in cached] == ["search"]
    turn.assert_sessions_closed()
