"""What both OpenAI adapters say alike: the system text, a tool result's text, images as data URLs, and
OpenAI's documented limit on tools."""

from __future__ import annotations

import base64

from chat_mcp_primer.model import Attachment, ModelLimits, ModelRequest, ToolResult

# Chat Completions: "A max of 128 functions are supported", the `tools` parameter in OpenAI's API reference
# (and its OpenAPI spec); a longer array is refused with a 400 `array_above_max_length` ("Invalid 'tools':
# array too long. Expected an array with maximum length 128").
# Tool names need no more care: the runtime's names already keep to OpenAI's `^[a-zA-Z0-9_-]{1,64}$`.
OPENAI_LIMITS = ModelLimits(max_tools=128)
# The Responses API: its reference documents no maximum for the `tools` array (neither the API reference
# nor the SDK's generated docstring of `tools` names one), and the 128 above is stated for Chat Completions
# only. We keep 128 until OpenAI states a number: both APIs front the same function calling, and the two
# ways of being wrong are not alike: a limit below the real one drops tools in plain sight
# (`model.tools_dropped`, the turn goes on), a limit above it fails the whole step with a 400. A user who
# knows better passes `OpenAIResponsesModel(limits=...)`.
OPENAI_RESPONSES_LIMITS = OPENAI_LIMITS
# OpenAI accepts these image types in a request (its vision guide); other attachments are named in text.
_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


def system_text(request: ModelRequest) -> str:
    """The instructions, then each of the runtime's notes, as one system text ("" for none)."""
    return "\n\n".join(part for part in (request.instructions, *request.notes) if part)


def result_text(result: ToolResult) -> str:
    """The result's text; a failure says so, since OpenAI's tool outputs have no error flag. Attachments
    that are not images are named, so the model knows they exist."""
    text = f"Error: {result.text}" if result.is_error else result.text
    skipped = [attachment.mime_type for attachment in result.attachments if not is_image(attachment)]
    if skipped:
        text += f"\n[attachments not shown: {', '.join(skipped)}]"
    return text


def is_image(attachment: Attachment) -> bool:
    return attachment.mime_type in _IMAGE_TYPES


def data_url(attachment: Attachment) -> str:
    return f"data:{attachment.mime_type};base64,{base64.b64encode(attachment.data).decode('ascii')}"
