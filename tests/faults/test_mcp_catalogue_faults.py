"""The fault matrix, continued: catalogues that are odd rather than broken. Duplicate tool names within
a server and across servers, and a server with 10,000 tools."""

from __future__ import annotations

import pytest
from _harness import calls, run_fault_turn

from chat_mcp_primer.testing import MockClock, ToolDef, WorkspaceMCPServer, echo_tools

pytestmark = pytest.mark.anyio

MANY = 10_000
PAGE = 500


async def test_duplicate_names_within_and_across_servers_each_reach_their_own_tool(clock: MockClock) -> None:
    docs_tools = [ToolDef("search", "first"), ToolDef("search", "a duplicate"), ToolDef("find")]
    with (
        WorkspaceMCPServer(docs_tools, name="docs", clock=clock) as docs,
        WorkspaceMCPServer(echo_tools("search"), name="code", clock=clock) as code,
        WorkspaceMCPServer(echo_tools("x"), name="dotted", clock=clock) as dotted,
        WorkspaceMCPServer(echo_tools("x"), name="underscored", clock=clock) as underscored,
    ):
        # "my.docs" and "my_docs" both sanitise to "my_docs": the second server's tool gets a hash suffix.
        endpoints = [docs.endpoint(), code.endpoint(), dotted.endpoint("my.docs"), underscored.endpoint("my_docs")]
        turn = await run_fault_turn(
            clock, endpoints, calls(clock, "docs__search", "code__search", "my_docs__x", "docs__find")
        )
        for server in (docs, code, dotted, underscored):
            await server.wait_until_idle()

    offered = turn.offered(1)
    assert offered[:4] == ["docs__search", "docs__find", "code__search", "my_docs__x"]
    [suffixed] = offered[4:]
    assert suffixed.startswith("my_docs__x_")
    assert len(suffixed) == len("my_docs__x_") + 8
    assert turn.result_of("docs__search").text == "search called with {}"
    assert turn.result_of("code__search").text == "search called with {}"
    assert (docs.call_calls, code.call_calls) == (2, 1)  # docs__search and docs__find; code__search
    assert (dotted.call_calls, underscored.call_calls) == (1, 0)  # "my_docs__x" is the first, dotted one
    [skipped] = turn.events.named("discovery.tool_skipped")
    assert (skipped.fields["server"], skipped.fields["reason"]) == ("docs", "duplicate name")
    cached = await turn.cached("docs")
    assert cached is not None
    assert [(tool.name, tool.description) for tool in cached] == [("search", "first"), ("find", "")]
    turn.assert_discovery_bounded()
    turn.assert_sessions_closed()


async def test_ten_thousand_tools_are_listed_whole_offered_and_callable(clock: MockClock) -> None:
    names = [f"tool_{i:05d}" for i in range(MANY)]
    with WorkspaceMCPServer(echo_tools(*names), name="big", clock=clock, page_size=PAGE) as server:
        turn = await run_fault_turn(clock, [server.endpoint()], calls(clock, "big__tool_09999"))
        await server.wait_until_idle()

    assert turn.offered(1) == [f"big__{name}" for name in names]
    assert turn.result_of("big__tool_09999").text == "tool_09999 called with {}"
    assert server.list_calls == MANY // PAGE  # listed once, every page, then served from the cache
    cached = await turn.cached("big")
    assert cached is not None
    assert len(cached) == MANY
    turn.assert_discovery_bounded()
    turn.assert_sessions_closed()
