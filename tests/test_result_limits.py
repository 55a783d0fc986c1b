"""Tool results are bounded before they enter the chat: text by characters, attachments by bytes and
count, each cut explained to the model by a marker; the same bound for every tool."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mcp_types
import pytest

from chat_mcp_primer import Chat, ChatRuntime, ToolResultLimits
from chat_mcp_primer.chatloop import bound_result, run_loop
from chat_mcp_primer.events import Events
from chat_mcp_primer.model import Attachment, Message, ModelResponse, ToolResult, ToolSpec
from chat_mcp_primer.testing import (
    EventRecorder,
    FakeAgent,
    FakeCoder,
    FakeTemplate,
    FakeVersion,
    MockClock,
    ScriptedModel,
    call,
    serve_fake_coder,
)
from chat_mcp_primer.tools import CoderWorkspaces
from chat_mcp_primer.workspace.coder import CoderBackend, CoderClient
from chat_mcp_primer.workspace_mcp._proxy import convert_result

pytestmark = pytest.mark.anyio

LIMITS = ToolResultLimits(
    max_result_chars=10, max_attachment_bytes=100, max_result_attachment_bytes=150, max_result_attachments=3
)


def png(size: int) -> Attachment:
    return Attachment(mime_type="image/png", data=b"\x89" * size)


def test_a_result_within_the_limits_is_kept_as_it_is() -> None:
    result = ToolResult(text="x" * 10, attachments=(png(100), png(50)))
    assert bound_result(result, LIMITS) == (result, None)
    assert bound_result(ToolResult(text=""), LIMITS) == (ToolResult(text=""), None)


def test_text_one_past_the_limit_keeps_the_prefix_and_says_how_much_was_left_out() -> None:
    bounded, truncation = bound_result(ToolResult(text="0123456789A", is_error=True), LIMITS)
    assert bounded.text == (
        "0123456789\n[… 1 character of this tool result left out: tool results are limited to 10 characters; "
        "ask the tool for less (a narrower query, a range)]"
    )
    assert bounded.is_error
    assert truncation is not None
    assert (truncation.text_chars, truncation.kept_chars) == (11, 10)


def test_the_default_marker_counts_millions_readably() -> None:
    bounded, _ = bound_result(ToolResult(text="y" * 5_000_000), ToolResultLimits())
    prefix, marker = bounded.text.split("\n")
    assert prefix == "y" * 50_000
    assert marker.startswith("[… 4,950,000 characters of this tool result left out: ")
    assert "limited to 50,000 characters" in marker


def test_an_image_over_the_bound_is_replaced_by_a_marker_naming_its_type_and_size() -> None:
    bounded, truncation = bound_result(ToolResult(text="a shot", attachments=(png(101),)), LIMITS)
    assert bounded.attachments == ()
    assert bounded.text == (
        "a shot\n[image/png attachment of 101 bytes left out: attachments are limited to 100 bytes each]"
    )
    assert truncation is not None
    assert (truncation.attachments, truncation.kept_attachments) == (1, 0)
    assert (truncation.attachment_bytes, truncation.kept_attachment_bytes) == (101, 0)


def test_attachments_are_kept_in_order_while_they_fit_in_all_and_in_count() -> None:
    audio = Attachment(mime_type="audio/wav", data=b"\x00" * 60)
    parts = (png(100), audio, png(40), png(5), png(5), png(200))
    bounded, truncation = bound_result(ToolResult(text="", attachments=parts), LIMITS)
    # 100 fits; 60 would pass 150 in all; 40 and 5 fit (145); the fourth kept would pass the count of 3.
    assert bounded.attachments == (parts[0], parts[2], parts[3])
    assert bounded.text.split("\n") == [
        "[audio/wav attachment of 60 bytes left out: a tool result's attachments are limited to 150 bytes in all]",
        "[image/png attachment of 5 bytes left out: a tool result is limited to 3 attachments]",
        "[image/png attachment of 200 bytes left out: attachments are limited to 100 bytes each]",
    ]
    assert truncation is not None
    assert (truncation.attachment_bytes, truncation.kept_attachment_bytes) == (410, 145)


def test_text_and_attachments_cut_together_give_one_marker_each_text_first() -> None:
    bounded, _ = bound_result(ToolResult(text="z" * 30, attachments=(png(500),)), LIMITS)
    lines = bounded.text.split("\n")
    assert lines[0] == "z" * 10
    assert lines[1].startswith("[… 20 characters of this tool result left out")
    assert lines[2].startswith("[image/png attachment of 500 bytes left out")


def test_many_left_out_attachments_are_named_a_few_then_counted() -> None:
    bounded, truncation = bound_result(ToolResult(text="", attachments=(png(101),) * 1_000), LIMITS)
    lines = bounded.text.split("\n")
    assert len(lines) == 6
    assert lines[-1] == "[… and 995 more attachments left out]"
    assert truncation is not None
    assert truncation.kept_attachments == 0


def test_an_attachment_whose_media_type_is_not_one_is_left_out_without_repeating_it() -> None:
    bounded, _ = bound_result(ToolResult(text="", attachments=(Attachment("image/" + "x" * 10_000, b"1"),)), LIMITS)
    assert bounded.text == "[an attachment of 1 byte left out: its media type is not one]"
    assert bounded.attachments == ()


@pytest.mark.parametrize(
    "field", ["max_result_chars", "max_attachment_bytes", "max_result_attachment_bytes", "max_result_attachments"]
)
def test_negative_limits_are_refused(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ToolResultLimits(**{field: -1})


def test_an_embedded_text_resource_keeps_its_text_and_a_binary_one_is_named_with_its_size() -> None:
    result = convert_result(
        mcp_types.CallToolResult(
            content=[
                mcp_types.EmbeddedResource(
                    type="resource",
                    resource=mcp_types.TextResourceContents(uri="file:///notes.md", text="# Notes\nhello"),
                ),
                mcp_types.EmbeddedResource(
                    type="resource",
                    resource=mcp_types.BlobResourceContents(
                        uri="file:///a.pdf", mime_type="application/pdf", blob="QUJD" * 1_000
                    ),
                ),
            ]
        )
    )
    assert result.text == (
        "[embedded resource: file:///notes.md]\n# Notes\nhello\n"
        "[embedded resource: file:///a.pdf (application/pdf, about 3,000 bytes, not shown)]"
    )


class BigTool:
    """A built-in tool whose answer is far larger than any model should get."""

    spec = ToolSpec(name="dump_logs", description="Everything the build printed.")

    def __init__(self, result: ToolResult) -> None:
        self.result = result

    async def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        return self.result


class Raises:
    spec = ToolSpec(name="explode", description="Fails with a very long message.")

    async def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        raise RuntimeError("e" * 1_000_000)


def result_texts(messages: tuple[Message, ...]) -> list[str]:
    return [message.result.text for message in messages if message.result is not None]


async def test_a_built_in_tool_result_is_bounded_in_the_loop_and_the_cut_is_an_event(clock: MockClock) -> None:
    recorder = EventRecorder()
    model = ScriptedModel([ModelResponse(tool_calls=(call("dump_logs"), call("explode"))), ModelResponse(text="ok")])
    tools = [BigTool(ToolResult(text="L" * 5_000_000, attachments=(png(3_000_000),))), Raises()]

    result = await run_loop(model, (Message.user("go"),), tools, events=Events(clock.now, recorder))

    dump, explode = result_texts(model.requests[1].messages)  # what the model got back...
    assert result_texts(result.messages) == [dump, explode]  # ...is what the history keeps
    assert dump.startswith("L" * 50_000 + "\n[… 4,950,000 characters of this tool result left out")
    assert dump.endswith(
        "[image/png attachment of 3,000,000 bytes left out: attachments are limited to 1,048,576 bytes each]"
    )
    assert explode.startswith("tool 'explode' failed: RuntimeError: eee")
    assert "characters of this tool result left out" in explode
    assert sum(len(text) for text in (dump, explode)) < 2 * 50_000 + 1_000
    cuts = {event.fields["tool"]: dict(event.fields) for event in recorder.named("tool.result_truncated")}
    assert cuts["dump_logs"] == {
        "tool": "dump_logs",
        "text_chars": 5_000_000,
        "kept_chars": 50_000,
        "attachments": 1,
        "kept_attachments": 0,
        "attachment_bytes": 3_000_000,
        "kept_attachment_bytes": 0,
    }
    assert set(cuts) == {"dump_logs", "explode"}


async def test_the_runtime_applies_its_limits_to_built_in_tools(clock: MockClock) -> None:
    recorder = EventRecorder()
    model = ScriptedModel([ModelResponse(tool_calls=(call("dump_logs"),)), ModelResponse(text="ok")])
    limits = ToolResultLimits(max_result_chars=100)
    runtime = ChatRuntime(
        model, tools=[BigTool(ToolResult(text="L" * 1_000))], clock=clock, result_limits=limits, on_event=recorder
    )
    async with runtime:
        turn = await runtime.run_turn(Chat(id="chat-1", owner="alice"), "show me the logs")

    [text] = result_texts(turn.chat.messages)
    assert text.startswith("L" * 100 + "\n[… 900 characters of this tool result left out")
    assert len(recorder.named("tool.result_truncated")) == 1


async def test_a_lifecycle_tool_result_is_bounded_by_the_same_limits(clock: MockClock) -> None:
    """list_templates answers with every template's description: a deployment with very long ones must not
    flood the chat either."""
    templates = [
        FakeTemplate(f"t{i}", [FakeVersion("v1", agents=[FakeAgent()])], description="d" * 30_000) for i in range(3)
    ]
    fake = FakeCoder(clock, templates=templates)
    model = ScriptedModel([ModelResponse(tool_calls=(call("list_templates"),)), ModelResponse(text="ok")])
    recorder = EventRecorder()
    with serve_fake_coder(fake) as coder:
        async with CoderClient(coder.url, coder.token, clock=clock) as client:
            runtime = ChatRuntime(
                model, workspaces=CoderWorkspaces(CoderBackend(client)), clock=clock, on_event=recorder
            )
            async with clock.autojump(), runtime:
                turn = await runtime.run_turn(Chat(id="chat-1", owner="alice"), "which templates are there?")

    [text] = result_texts(turn.chat.messages)
    assert text.startswith('{"templates": [')
    kept, marker = text.rsplit("\n", 1)
    assert len(kept) == 50_000
    [cut] = recorder.named("tool.result_truncated")
    assert cut.fields["tool"] == "list_templates"
    assert cut.fields["text_chars"] > 90_000
    left = cut.fields["text_chars"] - 50_000
    assert marker.startswith(f"[… {left:,} characters of this tool result left out: tool results are limited to ")
