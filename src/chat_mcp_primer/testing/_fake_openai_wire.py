"""A scripted answer in OpenAI's wire formats: a Chat Completions object and its streamed chunks, a Responses
object and its streamed events. The shapes are those of OpenAI's API reference (the chat completion and
chunk objects; the response object and its streaming events)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from chat_mcp_primer.model import ToolCall

# How many characters each streamed piece of text or arguments carries: small, so every answer a test
# scripts arrives in several pieces and a tool call's arguments are split across chunks.
DEFAULT_PIECE_CHARS = 4
# The fake's creation time on every object: a fixed value keeps what it serves reproducible.
_CREATED = 1_700_000_000


@dataclass(frozen=True, slots=True)
class FakeOpenAIAnswer:
    """What the fake model answers: ``text``, ``tool_calls`` (several: parallel calls), or a ``refusal``;
    ``cut_off`` says it hit its output limit. ``input_tokens``/``output_tokens`` are the usage reported.
    Streamed, text and arguments come in pieces of ``piece_chars`` characters."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    refusal: str = ""
    cut_off: bool = False
    input_tokens: int = 11
    output_tokens: int = 7
    piece_chars: int = DEFAULT_PIECE_CHARS


@dataclass(frozen=True, slots=True)
class FakeOpenAIFailure:
    """An HTTP error the fake answers with, in OpenAI's error body (``{"error": {"message", "type", "param",
    "code"}}``), with ``headers`` such as ``retry-after``."""

    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": None, "code": self.code}}


@dataclass(frozen=True, slots=True)
class FakeOpenAIFailedResponse:
    """A response the Responses API took and then failed: ``status: "failed"`` with its ``error`` (``code``,
    ``message``), as JSON or, streamed, ``response.created`` then ``response.failed``. Chat Completions has
    no such answer: that endpoint answers it with a 400."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class FakeOpenAIBrokenStream:
    """A Chat Completions stream that breaks after the pieces of ``text``, before its finish chunk and
    ``[DONE]``: with an ``error`` chunk (``data: {"error": {...}}``, as OpenAI reports a failure met
    mid-stream) when ``error`` is given; else with its connection ``dropped`` (the response aborted
    mid-body), or, not ``dropped``, with the body simply ending there, as a proxy that gave up would leave
    it. Only ``/v1/chat/completions`` streams it; a request that does not stream gets a 400."""

    text: str = ""
    error: FakeOpenAIFailure | None = None
    dropped: bool = True
    piece_chars: int = DEFAULT_PIECE_CHARS


class FakeOpenAIConnectionDropped(Exception):
    """Raised inside the fake's stream to drop its connection mid-body: the server aborts the response."""


def pieces(text: str, size: int) -> list[str]:
    return [text[start : start + size] for start in range(0, len(text), size)]


def _response_base(model: str, number: int) -> dict[str, Any]:
    return {"id": f"resp_{number}", "object": "response", "created_at": _CREATED, "model": model, "output": [],
            "error": None, "incomplete_details": None, "parallel_tool_calls": True, "tool_choice": "auto",
            "tools": [], "usage": None}  # fmt: skip


def sse(data: Mapping[str, Any], event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n"


# -- Chat Completions -------------------------------------------------------------------------------


def _chat_finish(answer: FakeOpenAIAnswer) -> str:
    if answer.cut_off:
        return "length"
    return "tool_calls" if answer.tool_calls else "stop"


def _chat_usage(answer: FakeOpenAIAnswer) -> dict[str, int]:
    total = answer.input_tokens + answer.output_tokens
    return {"prompt_tokens": answer.input_tokens, "completion_tokens": answer.output_tokens, "total_tokens": total}


def chat_completion(answer: FakeOpenAIAnswer, model: str, number: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": answer.text or None, "refusal": answer.refusal or None}
    if answer.tool_calls:
        message["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in answer.tool_calls
        ]
    return {
        "id": f"chatcmpl-{number}",
        "object": "chat.completion",
        "created": _CREATED,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": _chat_finish(answer)}],
        "usage": _chat_usage(answer),
    }


def chat_chunks(answer: FakeOpenAIAnswer, model: str, number: int, *, include_usage: bool) -> Iterator[str]:
    """The SSE stream of a completion: a role chunk, text (or refusal) pieces, each tool call's head then its
    argument pieces, the finish chunk, the usage chunk (no choices) when asked for, then ``[DONE]``."""

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> str:
        return sse(_chat_chunk(model, number, [_chat_choice(delta, finish_reason)]))

    yield chunk({"role": "assistant", "content": ""})
    for piece in pieces(answer.text, answer.piece_chars):
        yield chunk({"content": piece})
    for piece in pieces(answer.refusal, answer.piece_chars):
        yield chunk({"refusal": piece})
    for index, call in enumerate(answer.tool_calls):
        head = {"index": index, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}
        yield chunk({"tool_calls": [head]})
        for piece in pieces(call.arguments, answer.piece_chars):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, _chat_finish(answer))
    if include_usage:
        yield sse({**_chat_chunk(model, number, []), "usage": _chat_usage(answer)})
    yield "data: [DONE]\n\n"


def broken_chat_chunks(broken: FakeOpenAIBrokenStream, model: str, number: int) -> Iterator[str]:
    """The role chunk and the text pieces, then the error chunk, a dropped connection, or nothing more."""
    yield sse(_chat_chunk(model, number, [_chat_choice({"role": "assistant", "content": ""})]))
    for piece in pieces(broken.text, broken.piece_chars):
        yield sse(_chat_chunk(model, number, [_chat_choice({"content": piece})]))
    if broken.error is not None:
        yield sse(broken.error.body())
    elif broken.dropped:
        raise FakeOpenAIConnectionDropped("FakeOpenAI drops the stream's connection, as scripted")


def _chat_choice(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


def _chat_chunk(model: str, number: int, choices: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": f"chatcmpl-{number}", "object": "chat.completion.chunk", "created": _CREATED, "model": model,
            "choices": choices}  # fmt: skip


# -- Responses --------------------------------------------------------------------------------------


def _message_item(answer: FakeOpenAIAnswer, number: int) -> dict[str, Any]:
    part = (
        {"type": "refusal", "refusal": answer.refusal}
        if answer.refusal
        else {"type": "output_text", "text": answer.text, "annotations": []}
    )
    return {"type": "message", "id": f"msg_{number}", "status": "completed", "role": "assistant", "content": [part]}


def _call_item(call: ToolCall, number: int, index: int) -> dict[str, Any]:
    return {"type": "function_call", "id": f"fc_{number}_{index}", "call_id": call.id, "name": call.name,
            "arguments": call.arguments, "status": "completed"}  # fmt: skip


def response_object(answer: FakeOpenAIAnswer, model: str, number: int, *, done: bool = True) -> dict[str, Any]:
    if not done:
        return {**_response_base(model, number), "status": "in_progress"}
    output: list[dict[str, Any]] = []
    if answer.text or answer.refusal:
        output.append(_message_item(answer, number))
    output.extend(_call_item(call, number, index) for index, call in enumerate(answer.tool_calls))
    total = answer.input_tokens + answer.output_tokens
    return {
        **_response_base(model, number),
        "status": "incomplete" if answer.cut_off else "completed",
        "output": output,
        "incomplete_details": {"reason": "max_output_tokens"} if answer.cut_off else None,
        "usage": {
            "input_tokens": answer.input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": answer.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": total,
        },
    }


def failed_response_object(failure: FakeOpenAIFailedResponse, model: str, number: int) -> dict[str, Any]:
    return {**_response_base(model, number), "status": "failed", "error": {"code": failure.code,
            "message": failure.message}}  # fmt: skip


def failed_response_events(failure: FakeOpenAIFailedResponse, model: str, number: int) -> Iterator[str]:
    created = {**_response_base(model, number), "status": "in_progress"}
    yield sse({"type": "response.created", "sequence_number": 0, "response": created}, "response.created")
    failed = failed_response_object(failure, model, number)
    yield sse({"type": "response.failed", "sequence_number": 1, "response": failed}, "response.failed")


def response_events(answer: FakeOpenAIAnswer, model: str, number: int) -> Iterator[str]:
    """The SSE stream of a response: ``response.created``, each output item added, its text, refusal or
    argument deltas and their ``.done``, the item done, then ``response.completed`` (or ``.incomplete``)."""
    sequence = iter(range(1_000_000))

    def event(kind: str, **data: Any) -> str:
        return sse({"type": kind, "sequence_number": next(sequence), **data}, kind)

    yield event("response.created", response=response_object(answer, model, number, done=False))
    final = response_object(answer, model, number)
    for index, item in enumerate(final["output"]):
        yield event("response.output_item.added", output_index=index, item={**item, "status": "in_progress"})
        where = {"item_id": item["id"], "output_index": index}
        if item["type"] == "message":
            part = item["content"][0]
            kind, key = ("refusal", "refusal") if part["type"] == "refusal" else ("output_text", "text")
            for piece in pieces(part[key], answer.piece_chars):
                yield event(f"response.{kind}.delta", **where, content_index=0, delta=piece, logprobs=[])
            yield event(f"response.{kind}.done", **where, content_index=0, **{key: part[key]}, logprobs=[])
        else:
            for piece in pieces(item["arguments"], answer.piece_chars):
                yield event("response.function_call_arguments.delta", **where, delta=piece)
            yield event("response.function_call_arguments.done", **where, arguments=item["arguments"])
        yield event("response.output_item.done", output_index=index, item=item)
    yield event("response.incomplete" if answer.cut_off else "response.completed", response=final)
