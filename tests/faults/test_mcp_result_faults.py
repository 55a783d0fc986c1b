"""The fault matrix, continued: workspace tools whose results are far larger than a model can afford.

Every row runs a whole turn over real loopback HTTP against a real MCP server and checks what the model
got (a bounded result that says what was left out and why), that the chat history the turn leaves does
not carry the excess, and (with the `leaks` fixture) that nothing was left behind.
"""

from __future__ import annotations

import base64
from typing import Any

import mcp_types
import pytest
from _harness import FaultTurn, calls, run_fault_turn

from chat_mcp_primer import ToolResult, ToolResultLimits
from chat_mcp_primer.testing import EventRecorder, MockClock, WorkspaceMCPServer, echo_tools

pytestmark = pytest.mark.anyio

LIMITS = ToolResultLimits()
TOOL = "docs__dump"
# What one turn's messages may add up to besides the bounded result: the user's text, the calls, markers.
_OVERHEAD_CHARS = 2_000
TEXT_MARKER = "characters of this tool result left out: tool results are limited to 50,000 characters"


async def dump_turn(clock: MockClock, *content: mcp_types.ContentBlock, is_error: bool = False) -> FaultTurn:
    """A turn whose model calls the workspace tool once, the tool answering with ``content``."""

    def answer(name: str, arguments: dict[str, Any]) -> mcp_types.CallToolResult:
        return mcp_types.CallToolResult(content=list(content), is_error=is_error)

    with WorkspaceMCPServer(echo_tools("dump"), name="docs", clock=clock, on_call=answer) as server:
        turn = await run_fault_turn(clock, [server.endpoint()], calls(clock, TOOL), events=EventRecorder())
        await server.wait_until_idle()
    assert turn.result.stop_reason == "completed"
    assert server.call_calls == 1
    turn.assert_sessions_closed()
    return turn


def history_size(turn: FaultTurn) -> int:
    """What the chat carries into every later model request: its characters of text and its bytes of
    attachments."""
    size = 0
    for message in turn.result.chat.messages:
        size += len(message.text) + sum(len(call.arguments) for call in message.tool_calls)
        if message.result is not None:
            size += len(message.result.text) + sum(len(a.data) for a in message.result.attachments)
    return size


def what_the_model_got(turn: FaultTurn) -> ToolResult:
    """The tool's result as the model saw it on the step after the call, which is also what the history
    keeps."""
    [seen] = [m.result for m in turn.model.requests[-1].messages if m.result is not None and m.tool_name == TOOL]
    assert seen == turn.result_of(TOOL)
    return seen


async def test_a_50_mb_text_result_reaches_the_model_as_a_clear_refusal_never_50_million_characters(
    clock: MockClock,
) -> None:
    turn = await dump_turn(clock, mcp_types.TextContent(type="text", text="x" * 50_000_000))

    # Larger than a response may be (SessionSettings.max_response_bytes), so it is refused on the wire,
    # before it is parsed, with a reason that says so; smaller ones are cut by the result limit (below).
    result = what_the_model_got(turn)
    assert result.is_error
    assert "response larger than 8 MiB" in result.text, result.text
    assert history_size(turn) <= 2 * _OVERHEAD_CHARS


async def test_a_5_mb_text_result_keeps_its_first_characters_and_says_how_many_were_left_out(
    clock: MockClock,
) -> None:
    text = "".join(f"line {i:07d}\n" for i in range(5_000_000 // 13))  # 13 characters a line
    turn = await dump_turn(clock, mcp_types.TextContent(type="text", text=text))

    result = what_the_model_got(turn)
    assert not result.is_error
    left = len(text) - LIMITS.max_result_chars
    assert result.text == (
        f"{text[: LIMITS.max_result_chars]}\n[… {left:,} {TEXT_MARKER}; ask the tool for less (a narrower query, "
        "a range)]"
    )
    assert history_size(turn) <= LIMITS.max_result_chars + 2 * _OVERHEAD_CHARS
    [cut] = turn.events.named("tool.result_truncated")
    assert (cut.fields["tool"], cut.fields["text_chars"], cut.fields["kept_chars"]) == (TOOL, len(text), 50_000)


async def test_a_3_mb_image_is_replaced_by_a_marker_and_the_rest_of_the_result_kept(clock: MockClock) -> None:
    small, large = b"\x89PNG" + b"s" * 1_000, b"\x89PNG" + b"L" * 3_000_000
    turn = await dump_turn(
        clock,
        mcp_types.TextContent(type="text", text="two screenshots"),
        mcp_types.ImageContent(type="image", data=base64.b64encode(large).decode(), mime_type="image/png"),
        mcp_types.ImageContent(type="image", data=base64.b64encode(small).decode(), mime_type="image/jpeg"),
        mcp_types.EmbeddedResource(
            type="resource", resource=mcp_types.TextResourceContents(uri="file:///notes.md", text="see both")
        ),
    )

    result = what_the_model_got(turn)
    assert [(a.mime_type, a.data) for a in result.attachments] == [("image/jpeg", small)]
    assert result.text == (
        "two screenshots\n[embedded resource: file:///notes.md]\nsee both\n"
        "[image/png attachment of 3,000,004 bytes left out: attachments are limited to 1,048,576 bytes each]"
    )
    assert history_size(turn) <= 2 * len(small) + 2 * _OVERHEAD_CHARS
    [cut] = turn.events.named("tool.result_truncated")
    assert cut.fields["attachment_bytes"] == len(small) + len(large)
    assert (cut.fields["kept_attachments"], cut.fields["kept_attachment_bytes"]) == (1, len(small))


async def test_a_tool_failing_with_a_5_mb_error_text_stays_an_error_bounded_and_explained(clock: MockClock) -> None:
    turn = await dump_turn(clock, mcp_types.TextContent(type="text", text="E" * 5_000_000), is_error=True)

    result = what_the_model_got(turn)
    assert result.is_error
    assert result.text.startswith("E" * LIMITS.max_result_chars + "\n[… 4,950,000 " + TEXT_MARKER)
    assert history_size(turn) <= LIMITS.max_result_chars + 2 * _OVERHEAD_CHARS
