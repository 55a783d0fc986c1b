"""How much of one tool result the model gets: text by characters, attachments by bytes, with markers."""

from __future__ import annotations

from dataclasses import dataclass

from chat_mcp_primer.model import Attachment, ToolResult

_MIB = 1024 * 1024
# A media type is a type and a subtype of at most 127 characters each (RFC 6838): anything longer is not
# one, and an attachment keeps its type in the history, outside the text bound, so it is refused.
_MAX_MIME_TYPE_CHARS = 255
# Markers name at most this many left-out attachments one by one, then say how many more: the text a
# result's markers add stays a few lines however many parts it had.
_NAMED_DROPS = 5


@dataclass(frozen=True, slots=True)
class ToolResultLimits:
    """How large one tool result may be when it enters the chat history; larger ones are cut, and a marker
    tells the model what was left out and why.

    A result stays in the history for the rest of the conversation and every later model request carries
    it again, so these bound what one tool call can cost every step after it. They apply to every tool:
    workspace MCP tools, the lifecycle tools and your own.
    """

    # The text a model gets, in characters. 50,000 are about 12,500 tokens of prose at ~4 characters a
    # token (~17,000 of code or JSON at ~3): enough for a long file or a test log, while a dozen such
    # results still leave room in a 200,000-token context. Claude Code caps an MCP result at 25,000
    # tokens by default (and warns past 10,000); this is lower because every later step re-sends it.
    max_result_chars: int = 50_000
    # One image or audio clip, in bytes. A model sees an image at about 1.15 megapixels at most (larger
    # ones are scaled down, ~1,600 tokens), and a screenshot or a JPEG photo of that size is typically
    # well under 1 MiB; more bytes mostly buy nothing the model sees, and are re-sent (base64, a third
    # larger) on every step.
    max_attachment_bytes: int = _MIB
    # All attachments of one result, in bytes: two full-size images, or many small ones. Attachments
    # are kept in order while they fit.
    max_result_attachment_bytes: int = 2 * _MIB
    # All attachments of one result, counted: an image's tokens follow its pixels, not its bytes (a plain
    # 1,000 x 1,000 PNG of a few KB costs ~1,300), so byte bounds alone let a result carry hundreds of
    # images; twenty (~32,000 tokens at most) are as much as one result should take.
    max_result_attachments: int = 20

    def __post_init__(self) -> None:
        names = ("max_result_chars", "max_attachment_bytes", "max_result_attachment_bytes", "max_result_attachments")
        for name in names:
            if getattr(self, name) < 0:
                raise ValueError(f"ToolResultLimits.{name} must not be negative")


DEFAULT_RESULT_LIMITS = ToolResultLimits()


@dataclass(frozen=True, slots=True)
class Truncation:
    """What bounding a result left out: the sizes before and after, for the ``tool.result_truncated``
    event."""

    text_chars: int
    kept_chars: int
    attachments: int
    kept_attachments: int
    attachment_bytes: int
    kept_attachment_bytes: int


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}" if number == 1 else f"{number:,} {noun}s"


def _left_out(attachment: Attachment, reason: str) -> str:
    return f"[{attachment.mime_type} attachment of {_count(len(attachment.data), 'byte')} left out: {reason}]"


def _bound_attachments(
    attachments: tuple[Attachment, ...], limits: ToolResultLimits
) -> tuple[tuple[Attachment, ...], list[str]]:
    """The attachments kept (in order, while each fits), and a marker for each one left out."""
    kept: list[Attachment] = []
    markers: list[str] = []
    budget = limits.max_result_attachment_bytes
    for attachment in attachments:
        size = len(attachment.data)
        if len(attachment.mime_type) > _MAX_MIME_TYPE_CHARS:
            markers.append(f"[an attachment of {_count(size, 'byte')} left out: its media type is not one]")
        elif size > limits.max_attachment_bytes:
            each = _count(limits.max_attachment_bytes, "byte")
            markers.append(_left_out(attachment, f"attachments are limited to {each} each"))
        elif size > budget:
            in_all = _count(limits.max_result_attachment_bytes, "byte")
            markers.append(_left_out(attachment, f"a tool result's attachments are limited to {in_all} in all"))
        elif len(kept) >= limits.max_result_attachments:
            count = _count(limits.max_result_attachments, "attachment")
            markers.append(_left_out(attachment, f"a tool result is limited to {count}"))
        else:
            kept.append(attachment)
            budget -= size
    return tuple(kept), markers


def _named(markers: list[str]) -> list[str]:
    if len(markers) <= _NAMED_DROPS:
        return markers
    return [*markers[:_NAMED_DROPS], f"[… and {_count(len(markers) - _NAMED_DROPS, 'more attachment')} left out]"]


def bound_result(result: ToolResult, limits: ToolResultLimits) -> tuple[ToolResult, Truncation | None]:
    """``result`` within ``limits``, and what was left out (None when it already fitted: the same result).

    Text longer than ``max_result_chars`` keeps its first ``max_result_chars`` characters; attachments are
    kept in order while each fits on its own, in the bytes left and in the count. A marker line for each
    cut (the text's, then the attachments') is appended to the text, so the model knows the result is
    incomplete, by how much, and why. ``is_error`` is kept.
    """
    text = result.text
    kept_attachments, dropped = _bound_attachments(result.attachments, limits)
    if len(text) <= limits.max_result_chars and not dropped:
        return result, None
    lines: list[str] = []
    if len(text) > limits.max_result_chars:
        left = len(text) - limits.max_result_chars
        lines.append(
            f"[… {_count(left, 'character')} of this tool result left out: tool results are limited to "
            f"{_count(limits.max_result_chars, 'character')}; ask the tool for less (a narrower query, a range)]"
        )
    lines.extend(_named(dropped))
    kept_text = text[: limits.max_result_chars]
    bounded = ToolResult(
        text="\n".join([kept_text, *lines]) if kept_text else "\n".join(lines),
        is_error=result.is_error,
        attachments=kept_attachments,
    )
    truncation = Truncation(
        text_chars=len(text),
        kept_chars=len(kept_text),
        attachments=len(result.attachments),
        kept_attachments=len(kept_attachments),
        attachment_bytes=sum(len(attachment.data) for attachment in result.attachments),
        kept_attachment_bytes=sum(len(attachment.data) for attachment in kept_attachments),
    )
    return bounded, truncation
