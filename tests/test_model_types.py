"""Chat and Message survive a JSON round trip; ToolResult.json gives a stable JSON text."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chat_mcp_primer.model import Attachment, Chat, Message, Role, ToolCall, ToolResult, WorkspaceBinding

PNG_BYTES = b"\x89PNG\r\n\x1a\n\x00\xff\xfe binary"
CALL = ToolCall(id="call-7", name="git__status", arguments='{"path":  "src", "n": 1}')


def through_json(data: object) -> Any:
    return json.loads(json.dumps(data))


MESSAGES = [
    Message.user("please check the repo"),
    Message.assistant("looking", (CALL, ToolCall(id="call-8", name="fs__read", arguments=""))),
    Message.assistant("", (CALL,)),
    Message.assistant("plain answer"),
    Message.tool(CALL, ToolResult("clean", attachments=(Attachment("image/png", PNG_BYTES),))),
    Message.tool(CALL, ToolResult.error("server gone")),
    Message.tool(
        CALL,
        ToolResult(
            "two files",
            attachments=(Attachment("image/png", PNG_BYTES), Attachment("audio/wav", b"")),
        ),
    ),
]


@pytest.mark.parametrize("message", MESSAGES)
def test_message_survives_a_json_round_trip(message: Message) -> None:
    assert Message.from_dict(through_json(message.to_dict())) == message


def test_attachment_bytes_are_stored_as_text_and_restored_exactly() -> None:
    message = Message.tool(CALL, ToolResult("shot", attachments=(Attachment("image/png", PNG_BYTES),)))
    data = message.to_dict()

    json.dumps(data)  # must not raise: bytes are encoded
    restored = Message.from_dict(through_json(data))
    assert restored.result is not None
    assert restored.result.attachments == (Attachment("image/png", PNG_BYTES),)
    assert restored.result.attachments[0].data == PNG_BYTES


def test_tool_call_arguments_keep_their_raw_text() -> None:
    restored = Message.from_dict(through_json(Message.assistant("", (CALL,)).to_dict()))
    assert restored.tool_calls[0].arguments == '{"path":  "src", "n": 1}'


def test_tool_message_round_trip_keeps_call_id_name_and_error_flag() -> None:
    restored = Message.from_dict(through_json(Message.tool(CALL, ToolResult.error("boom")).to_dict()))

    assert restored.role is Role.TOOL
    assert restored.tool_call_id == "call-7"
    assert restored.tool_name == "git__status"
    assert restored.result == ToolResult(text="boom", is_error=True)


def full_chat() -> Chat:
    return Chat(
        id="chat-1",
        owner="alice",
        workspace=WorkspaceBinding("ws-1", build_id="build-2", agent_id="agent-3"),
        messages=tuple(MESSAGES),
        parent_id="chat-0",
        metadata={"title": "repo check", "model": "m-1"},
    )


def test_chat_survives_a_json_round_trip_with_messages_and_workspace_binding() -> None:
    chat = full_chat()
    restored = Chat.from_dict(through_json(chat.to_dict()))

    assert restored == chat
    assert restored.workspace == WorkspaceBinding("ws-1", build_id="build-2", agent_id="agent-3")
    assert restored.workspace_id == "ws-1"
    assert restored.build_id == "build-2"
    assert restored.agent_id == "agent-3"
    assert not restored.is_root


@pytest.mark.parametrize(
    "workspace",
    [None, WorkspaceBinding("ws-1"), WorkspaceBinding("ws-1", build_id="build-1")],
)
def test_chat_round_trip_keeps_a_missing_or_partial_workspace_binding(workspace: WorkspaceBinding | None) -> None:
    chat = Chat(id="chat-1", owner="alice", workspace=workspace)
    restored = Chat.from_dict(through_json(chat.to_dict()))

    assert restored == chat
    assert restored.workspace == workspace
    assert restored.is_root


def test_chat_to_dict_is_plain_json() -> None:
    data = full_chat().to_dict()
    assert through_json(data) == data


def test_tool_result_json_is_the_payload_as_a_sorted_json_object() -> None:
    result = ToolResult.json({"status": "ok", "count": 2, "nested": {"b": 1, "a": [1, 2]}})

    assert json.loads(result.text) == {"status": "ok", "count": 2, "nested": {"b": 1, "a": [1, 2]}}
    assert result.text == '{"count": 2, "nested": {"a": [1, 2], "b": 1}, "status": "ok"}'
    assert not result.is_error
    assert result.attachments == ()


def test_tool_result_json_text_does_not_depend_on_key_order() -> None:
    assert ToolResult.json({"a": 1, "b": 2}).text == ToolResult.json({"b": 2, "a": 1}).text


def test_tool_result_json_can_be_an_error() -> None:
    result = ToolResult.json({"error": "not ready"}, is_error=True)
    assert result.is_error
    assert json.loads(result.text) == {"error": "not ready"}
