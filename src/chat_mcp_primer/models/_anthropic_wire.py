"""Our conversation in the Messages API's words, and its answers back: pure data in, data out.

The shapes are the Messages API's (https://docs.anthropic.com/en/api/messages): a system prompt apart
from the conversation; user and assistant turns of content blocks; a tool call as an assistant
``tool_use`` block and its result as a ``tool_result`` block in the next user turn.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from anthropic.types import (
    AssistantMessageParam,
    ContentBlockParam,
    ImageBlockParam,
    MessageParam,
    StopReason,
    TextBlockParam,
    ToolParam,
    ToolResultBlockParam,
    UserMessageParam,
)
from anthropic.types import Usage as AnthropicUsage

from chat_mcp_primer.model import (
    Attachment,
    FinishReason,
    Message,
    ModelRequest,
    Role,
    ToolCall,
    ToolSpec,
    Usage,
)

Side = Literal["user", "assistant"]
ImageType = Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
# The image types the Messages API accepts in a base64 image source; any other attachment (audio, a PDF)
# is named in a text block instead, so the model knows the tool returned it.
_IMAGE_TYPES: Mapping[str, ImageType] = {
    "image/jpeg": "image/jpeg",
    "image/png": "image/png",
    "image/gif": "image/gif",
    "image/webp": "image/webp",
}

_FINISH_REASONS: Mapping[StopReason, FinishReason] = {
    "end_turn": FinishReason.END_TURN,
    "stop_sequence": FinishReason.END_TURN,  # a stop sequence the caller set: the answer is complete
    "tool_use": FinishReason.TOOL_CALLS,
    "max_tokens": FinishReason.MAX_TOKENS,
    # The output ran into the context window: cut off, as at the output limit.
    "model_context_window_exceeded": FinishReason.MAX_TOKENS,
    "refusal": FinishReason.REFUSAL,
    "pause_turn": FinishReason.OTHER,  # a server tool paused a long turn; we offer none
}


def system_text(request: ModelRequest) -> str:
    """The instructions, then each of the runtime's notes, as paragraphs of one system prompt."""
    return "\n\n".join(part for part in (request.instructions, *request.notes) if part)


def tool_params(tools: Iterable[ToolSpec]) -> list[ToolParam]:
    return [
        {"name": spec.name, "description": spec.description, "input_schema": _plain(spec.input_schema)}
        for spec in tools
    ]


def message_params(messages: Sequence[Message]) -> list[MessageParam]:
    """The conversation as alternating turns: consecutive messages of one side (the results of parallel
    tool calls, a user's text after them) become one turn of several blocks, as the API expects."""
    turns: list[tuple[Side, list[ContentBlockParam]]] = []
    for message in messages:
        side: Side = "assistant" if message.role is Role.ASSISTANT else "user"
        blocks = _blocks(message)
        if not blocks:  # an empty answer: the API rejects empty content, and it says nothing
            continue
        if turns and turns[-1][0] == side:
            turns[-1][1].extend(blocks)
        else:
            turns.append((side, blocks))
    return [_turn(side, blocks) for side, blocks in turns]


def _turn(side: Side, blocks: list[ContentBlockParam]) -> MessageParam:
    if side == "assistant":
        return AssistantMessageParam(role="assistant", content=blocks)
    return UserMessageParam(role="user", content=blocks)


def _blocks(message: Message) -> list[ContentBlockParam]:
    if message.role is Role.TOOL:
        return [_tool_result(message)]
    blocks: list[ContentBlockParam] = []
    if message.text:
        blocks.append({"type": "text", "text": message.text})
    for call in message.tool_calls:
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": _call_input(call)})
    return blocks


def _call_input(call: ToolCall) -> dict[str, object]:
    """The call's arguments as the object the API wants back. Arguments that are not a JSON object (the
    model wrote broken JSON, and the tool answered with an error) go back as an empty object: the error
    result that follows tells the model what went wrong."""
    try:
        parsed = json.loads(call.arguments or "{}")
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _tool_result(message: Message) -> ToolResultBlockParam:
    result = message.result
    content: list[TextBlockParam | ImageBlockParam] = []
    if result is not None and result.text:
        content.append({"type": "text", "text": result.text})
    for attachment in result.attachments if result is not None else ():
        content.append(_attachment_block(attachment))
    block: ToolResultBlockParam = {"type": "tool_result", "tool_use_id": message.tool_call_id or "", "content": content}
    if result is not None and result.is_error:
        block["is_error"] = True
    return block


def _attachment_block(attachment: Attachment) -> TextBlockParam | ImageBlockParam:
    image_type = _IMAGE_TYPES.get(attachment.mime_type)
    if image_type is None:
        return {"type": "text", "text": f"[the tool returned {attachment.mime_type} content, not shown]"}
    data = base64.b64encode(attachment.data).decode("ascii")
    return {"type": "image", "source": {"type": "base64", "media_type": image_type, "data": data}}


def finish_reason(stop_reason: StopReason | None) -> FinishReason | None:
    if stop_reason is None:
        return None
    return _FINISH_REASONS.get(stop_reason, FinishReason.OTHER)


def all_input_tokens(uncached: int, cache_written: int | None, cache_read: int | None) -> int:
    """Every input token of the step: the API counts tokens read from or written to its prompt cache apart
    from ``input_tokens``, and a caller adding up what a turn cost wants them all."""
    return uncached + (cache_written or 0) + (cache_read or 0)


def usage_of(usage: AnthropicUsage) -> Usage:
    counted = all_input_tokens(usage.input_tokens, usage.cache_creation_input_tokens, usage.cache_read_input_tokens)
    return Usage(input_tokens=counted, output_tokens=usage.output_tokens)


def _plain(value: Any) -> Any:
    """A JSON schema as plain dicts and lists (ours are read-only mappings), for the SDK to serialise."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
