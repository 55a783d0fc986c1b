"""The fault matrix, continued: a workspace server that sends more than any honest one would. Hundreds of
megabytes for a listing, millions of tools, a huge error, an event stream that never ends: each costs the
budget once, is bounded on the wire, explained, and leaves nothing behind; one long description never hides
the other tools, in either protocol era."""

from __future__ import annotations

from dataclasses import dataclass

import mcp_types
import pytest
from _harness import assert_never_offered, calls, run_fault_turn

from chat_mcp_primer.testing import Flood, MockClock, ToolDef, WorkspaceMCPServer, echo_tools
from chat_mcp_primer.workspace_mcp import ListingLimits, SessionSettings

pytestmark = pytest.mark.anyio

MB = 1_000_000
TOO_LARGE = "response larger than 8 MiB"
ERAS = ["auto", "legacy"]  # the 2026 era answers with JSON bodies; the older one with event streams


@dataclass(frozen=True, slots=True)
class FloodRow:
    id: str
    flood: Flood
    reason: str
    # The listing timeout may expire while the server streams (it never stops by itself).
    endless: bool = False
    listing: ListingLimits | None = None


# Two million tools in pages the byte bound lets through: the tool cap refuses the listing at its second
# page. A smaller cap here keeps the row quick (each page is parsed); the memory test uses the default.
PAGED = ListingLimits(max_tools_per_server=1_000)


FLOODS = [
    FloodRow("300-mb-listing-json", Flood.body(300 * MB), TOO_LARGE),
    FloodRow("300-mb-listing-event", Flood.body(300 * MB, sse=True), TOO_LARGE),
    FloodRow("2-million-tools-one-body", Flood.tools(2_000_000), TOO_LARGE),
    FloodRow("2-million-tools-paged", Flood.tools(2_000_000, page_size=1_000), "more than 1000 tools", listing=PAGED),
    FloodRow("300-mb-error-json", Flood.error(300 * MB), TOO_LARGE),
    FloodRow("300-mb-error-event", Flood.error(300 * MB, sse=True), TOO_LARGE),
    FloodRow("event-that-never-ends", Flood.endless_event(), TOO_LARGE),
    FloodRow("keep-alives-that-never-answer", Flood.keep_alives(), "timed out", endless=True),
    FloodRow("event-stream-ends-unanswered", Flood.unanswered(), "the server's event stream ended without an answer"),
]


@pytest.mark.parametrize("row", FLOODS, ids=lambda row: row.id)
async def test_a_flooding_server_is_cut_off_on_the_wire_explained_and_caches_nothing(
    clock: MockClock, row: FloodRow
) -> None:
    with WorkspaceMCPServer(echo_tools("search"), name="docs", clock=clock, flood=row.flood) as server:
        turn = await run_fault_turn(
            clock,
            [server.endpoint()],
            calls(clock, "docs__search"),
            listing=row.listing,
            expire=(lambda tags: server.flooding > 0 and "list" in tags) if row.endless else None,
        )
        server.flood = None
        await server.wait_until_idle()

    assert_never_offered(turn)
    assert server.floods_sent >= 1
    assert server.flooding == 0  # every stream was abandoned by the client, none runs on
    assert any(row.reason in reason for reason in turn.failures), turn.failures
    # A session that was sent too much is not used again: every listing dialled afresh.
    assert len(turn.events.named("session.dialing")) >= turn.listings
    refused = {event.fields["reason"] for event in turn.events.named("session.response_refused")}
    assert refused == ({TOO_LARGE} if row.reason == TOO_LARGE else set())


async def test_an_error_message_under_the_bound_is_never_repeated(clock: MockClock) -> None:
    with WorkspaceMCPServer(echo_tools("search"), name="docs", clock=clock, flood=Flood.error(2 * MB)) as server:
        turn = await run_fault_turn(clock, [server.endpoint()], calls(clock, "docs__search"))
        server.flood = None
        await server.wait_until_idle()

    assert_never_offered(turn)
    assert turn.failures == {"MCP error -32603 (the server answered with an HTTP error)"}


@pytest.mark.parametrize("mode", ERAS)
async def test_a_two_megabyte_description_is_truncated_and_hides_no_other_tool(clock: MockClock, mode: str) -> None:
    tools = [ToolDef("search", "x" * (2 * MB)), *echo_tools("find")]
    sessions = SessionSettings(mcp_mode=mode)
    with WorkspaceMCPServer(tools, name="docs", clock=clock) as server:
        turn = await run_fault_turn(clock, [server.endpoint()], calls(clock, "docs__search"), sessions=sessions)
        await server.wait_until_idle()

    assert turn.result.stop_reason == "completed"
    assert turn.offered(1) == ["docs__search", "docs__find"]
    assert turn.result_of("docs__search").text == "search called with {}"
    cached = await turn.cached("docs")
    assert cached is not None
    assert [len(tool.description) for tool in cached] == [ListingLimits().max_description_chars, len("The find tool.")]
    [truncated] = turn.events.named("discovery.description_truncated")
    assert truncated.fields["length"] == 2 * MB
    turn.assert_discovery_bounded()
    turn.assert_sessions_closed()


async def test_a_tool_result_larger_than_the_bound_fails_the_call_with_the_reason(clock: MockClock) -> None:
    def huge(name: str, arguments: dict[str, object]) -> mcp_types.CallToolResult:
        return mcp_types.CallToolResult(content=[mcp_types.TextContent(type="text", text="x" * (20 * MB))])

    with WorkspaceMCPServer(echo_tools("search"), name="docs", clock=clock, on_call=huge) as server:
        turn = await run_fault_turn(clock, [server.endpoint()], calls(clock, "docs__search"))
        await server.wait_until_idle()

    assert turn.result.stop_reason == "completed"
    assert turn.offered(1) == ["docs__search"]
    result = turn.result_of("docs__search")
    assert result.is_error
    assert result.text == f"workspace tool 'docs__search' failed: {TOO_LARGE}"
    assert server.call_calls == 1  # the call may have run: it is not repeated
    turn.assert_sessions_closed()
