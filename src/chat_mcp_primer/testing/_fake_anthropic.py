"""`FakeAnthropic`: Anthropic's Messages API on a loopback port, playing a script of replies.

It speaks the wire format of the API reference (https://docs.anthropic.com/en/api/messages and
.../messages-streaming): a JSON message, or, when the request asks to stream, the server-sent events
``message_start``, ``content_block_start``/``_delta``/``_stop`` (``text_delta``, ``input_json_delta``),
``message_delta`` (stop reason, usage) and ``message_stop``; errors as ``{"type": "error", "error": {...}}``
with their HTTP status. Point the official SDK at it: ``AsyncAnthropic(base_url=fake.base_url, ...)``.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from chat_mcp_primer.testing._serving import LoopbackServer

MESSAGES_PATH = "/v1/messages"


def anthropic_text_block(text: str) -> dict[str, Any]:
    """A text content block, for `FakeAnthropicMessage.content`."""
    return {"type": "text", "text": text}


def anthropic_tool_use_block(call_id: str, name: str, arguments: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A tool call content block, for `FakeAnthropicMessage.content`."""
    return {"type": "tool_use", "id": call_id, "name": name, "input": dict(arguments or {})}


@dataclass(frozen=True, slots=True)
class FakeAnthropicMessage:
    """An answer: its content blocks (`anthropic_text_block`, `anthropic_tool_use_block`), why it stopped, what it cost.

    Sent as one JSON message, or as the streaming events when the request asks to stream: each text in
    deltas of ``text_piece`` characters, each tool input's JSON in deltas of ``json_piece`` characters, so
    a streamed call's arguments arrive split across events as the real API splits them.
    """

    content: Sequence[Mapping[str, Any]] = ()
    stop_reason: str | None = "end_turn"
    input_tokens: int = 10
    output_tokens: int = 5
    model: str = "claude-fake"
    text_piece: int = 4
    json_piece: int = 5

    @classmethod
    def text(cls, text: str, **fields: Any) -> FakeAnthropicMessage:
        return cls(content=(anthropic_text_block(text),), **fields)

    def body(self, message_id: str) -> dict[str, Any]:
        return {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [dict(block) for block in self.content],
            "stop_reason": self.stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens},
        }

    def events(self, message_id: str) -> list[dict[str, Any]]:
        """The stream of this message, event by event, as the API sends it."""
        start = self.body(message_id) | {"content": [], "stop_reason": None}
        start["usage"] = {"input_tokens": self.input_tokens, "output_tokens": 1}
        events: list[dict[str, Any]] = [{"type": "message_start", "message": start}, {"type": "ping"}]
        for index, block in enumerate(self.content):
            events.extend(self._block_events(index, block))
        events.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": self.stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": self.output_tokens},
            }
        )
        events.append({"type": "message_stop"})
        return events

    def _block_events(self, index: int, block: Mapping[str, Any]) -> list[dict[str, Any]]:
        if block["type"] == "tool_use":
            opened = dict(block) | {"input": {}}
            kind, key, whole, size = "input_json_delta", "partial_json", json.dumps(block["input"]), self.json_piece
        else:
            opened = dict(block) | {"text": ""}
            kind, key, whole, size = "text_delta", "text", str(block.get("text", "")), self.text_piece
        deltas = [
            {"type": "content_block_delta", "index": index, "delta": {"type": kind, key: whole[at : at + size]}}
            for at in range(0, len(whole), size)
        ]
        return [
            {"type": "content_block_start", "index": index, "content_block": opened},
            *deltas,
            {"type": "content_block_stop", "index": index},
        ]


@dataclass(frozen=True, slots=True)
class FakeAnthropicEvents:
    """A stream sent exactly as given, one server-sent event per mapping (its ``type`` names the event):
    for what a `FakeAnthropicMessage` does not describe, such as an ``error`` event in the middle of a stream."""

    events: Sequence[Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class FakeAnthropicError:
    """An error answer: the HTTP ``status`` and the API's error ``type`` and ``message``, with extra
    ``headers`` (``{"retry-after": "7"}`` on a 429)."""

    status: int
    type: str
    message: str
    headers: Mapping[str, str] = field(default_factory=dict)

    def body(self, request_id: str) -> dict[str, Any]:
        return {"type": "error", "error": {"type": self.type, "message": self.message}, "request_id": request_id}


FakeReply = FakeAnthropicMessage | FakeAnthropicEvents | FakeAnthropicError


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """A request the fake received: its JSON body and its headers (names in lower case)."""

    body: Mapping[str, Any]
    headers: Mapping[str, str]


class FakeAnthropic:
    """The Messages API on 127.0.0.1, answering each request with the next reply of its script, and
    recording what it received (`requests`). A request beyond the script gets a 400 saying so, which the
    SDK does not retry. Use as a (sync) context manager; add replies at any time with `reply`."""

    def __init__(self, replies: Sequence[FakeReply] = ()) -> None:
        self._replies = list(replies)
        self._lock = threading.Lock()  # the app runs on the server's thread, the test on its own
        self._ids = itertools.count(1)
        self._received: list[ReceivedRequest] = []
        self._serving: LoopbackServer | None = None

    def reply(self, *replies: FakeReply) -> None:
        with self._lock:
            self._replies.extend(replies)

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._received)

    @property
    def base_url(self) -> str:
        if self._serving is None:
            raise RuntimeError("FakeAnthropic is not serving: use it as a context manager")
        return self._serving.base_url

    def _app(self) -> Starlette:
        return Starlette(routes=[Route(MESSAGES_PATH, self._messages, methods=["POST"])])

    async def _messages(self, request: Request) -> Response:
        body = await request.json()
        with self._lock:
            self._received.append(
                ReceivedRequest(body=body, headers={name.lower(): value for name, value in request.headers.items()})
            )
            position = len(self._received)
            reply = self._replies[position - 1] if position <= len(self._replies) else None
            serial = next(self._ids)
        if reply is None:
            exhausted = FakeAnthropicError(
                400, "invalid_request_error", f"FakeAnthropic's script has no reply {position}"
            )
            return JSONResponse(exhausted.body(f"req_{serial}"), status_code=exhausted.status)
        if isinstance(reply, FakeAnthropicError):
            return JSONResponse(reply.body(f"req_{serial}"), status_code=reply.status, headers=dict(reply.headers))
        if isinstance(reply, FakeAnthropicEvents):
            return _event_stream(reply.events)
        if body.get("stream"):
            return _event_stream(reply.events(f"msg_{serial}"))
        return JSONResponse(reply.body(f"msg_{serial}"))

    def __enter__(self) -> FakeAnthropic:
        self._serving = LoopbackServer(self._app).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._serving is not None:
            self._serving.stop()
            self._serving = None


def _event_stream(events: Sequence[Mapping[str, Any]]) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for event in events:  # one event per chunk: the client sees each as it would from the real API
            yield f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()

    return StreamingResponse(chunks(), media_type="text/event-stream")
