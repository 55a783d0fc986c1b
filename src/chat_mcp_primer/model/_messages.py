from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """What the model is told about a tool: its name, what it does, and its JSON Schema for arguments."""

    name: str
    description: str
    input_schema: Mapping[str, Any] = field(default_factory=lambda: _frozen({"type": "object", "properties": {}}))


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model asked for. ``arguments`` is the raw JSON text the model produced."""

    id: str
    name: str
    arguments: str = "{}"


@dataclass(frozen=True, slots=True)
class Attachment:
    """Binary content a tool returned (an image, audio), passed to the model as is."""

    mime_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a tool gives back to the model. Failures are results with ``is_error`` set, never exceptions."""

    text: str
    is_error: bool = False
    attachments: tuple[Attachment, ...] = ()

    @classmethod
    def json(cls, payload: Mapping[str, Any], *, is_error: bool = False) -> ToolResult:
        """A result whose text is ``payload`` as a JSON object, the form workspace tools answer in."""
        return cls(text=json.dumps(payload, sort_keys=True), is_error=is_error)

    @classmethod
    def error(cls, message: str) -> ToolResult:
        return cls(text=message, is_error=True)


class Role(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


@dataclass(frozen=True, slots=True)
class Message:
    """One entry of a conversation.

    A user message has ``text``; an assistant message has ``text`` and possibly ``tool_calls``; a tool
    message answers one call: ``tool_call_id``, ``tool_name`` and ``result``.
    """

    role: Role
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    tool_name: str | None = None
    result: ToolResult | None = None

    @classmethod
    def user(cls, text: str) -> Message:
        return cls(role=Role.USER, text=text)

    @classmethod
    def assistant(cls, text: str = "", tool_calls: tuple[ToolCall, ...] = ()) -> Message:
        return cls(role=Role.ASSISTANT, text=text, tool_calls=tool_calls)

    @classmethod
    def tool(cls, call: ToolCall, result: ToolResult) -> Message:
        return cls(role=Role.TOOL, tool_call_id=call.id, tool_name=call.name, result=result)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"role": self.role.value}
        if self.text:
            data["text"] = self.text
        if self.tool_calls:
            data["tool_calls"] = [
                {"id": call.id, "name": call.name, "arguments": call.arguments} for call in self.tool_calls
            ]
        if self.tool_call_id is not None:
            data["tool_call_id"] = self.tool_call_id
        if self.tool_name is not None:
            data["tool_name"] = self.tool_name
        if self.result is not None:
            data["result"] = {
                "text": self.result.text,
                "is_error": self.result.is_error,
                "attachments": [
                    {"mime_type": a.mime_type, "data": base64.b64encode(a.data).decode("ascii")}
                    for a in self.result.attachments
                ],
            }
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Message:
        result_data = data.get("result")
        result = None
        if result_data is not None:
            result = ToolResult(
                text=result_data["text"],
                is_error=bool(result_data.get("is_error", False)),
                attachments=tuple(
                    Attachment(mime_type=a["mime_type"], data=base64.b64decode(a["data"]))
                    for a in result_data.get("attachments", ())
                ),
            )
        return cls(
            role=Role(data["role"]),
            text=data.get("text", ""),
            tool_calls=tuple(
                ToolCall(id=c["id"], name=c["name"], arguments=c.get("arguments", "{}"))
                for c in data.get("tool_calls", ())
            ),
            tool_call_id=data.get("tool_call_id"),
            tool_name=data.get("tool_name"),
            result=result,
        )
