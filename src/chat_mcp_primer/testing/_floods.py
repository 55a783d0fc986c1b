"""Answers to ``tools/list`` that no honest server sends: hundreds of megabytes, millions of tools, event
streams that never end. Generated as they are sent, a chunk at a time, so the server itself stays small
and stops the moment the client goes away."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import anyio
from starlette.types import ASGIApp, Receive, Scope, Send

FloodKind = Literal["body", "tools", "error", "keep_alives", "endless_event", "unanswered"]
# One chunk handed to the server's socket at a time: large enough to fill a loopback socket fast, small
# enough that a client that stops reading leaves little generated for nothing.
_CHUNK_BYTES = 64 * 1024
# Real time between keep-alive comments of a stream that never answers (real time: the server's thread
# has no fake clock to wait on).
_KEEP_ALIVE_S = 0.005
_TOOLS_PER_CHUNK = 1_000
# What a 2026-era result must carry besides its content (older clients ignore it).
_RESULT_FIELDS = b'"resultType": "complete", "cacheScope": "private", "ttlMs": 0, '


@dataclass(frozen=True, slots=True)
class Flood:
    """What a `WorkspaceMCPServer` answers ``tools/list`` with instead of its tools (``flood=``).

    - `body`: a JSON-RPC answer of ``size`` bytes (one tool with a description that long);
    - `tools`: ``count`` tools, in pages of ``page_size`` (one page when None);
    - `error`: a JSON-RPC error whose message is ``size`` bytes;
    - `keep_alives`: an event stream of keep-alive comments that never answers;
    - `endless_event`: an event stream whose first event never ends;
    - `unanswered`: an event stream that ends, after a keep-alive, without answering (a server that
      crashed mid-request).

    ``sse`` sends `body`, `tools` and `error` as one event of an event stream (how servers of the older
    protocol era answer) instead of a JSON body.
    """

    kind: FloodKind
    size: int = 0
    count: int = 0
    page_size: int | None = None
    sse: bool = False

    @classmethod
    def body(cls, size: int, *, sse: bool = False) -> Flood:
        return cls("body", size=size, sse=sse)

    @classmethod
    def tools(cls, count: int, *, page_size: int | None = None, sse: bool = False) -> Flood:
        return cls("tools", count=count, page_size=page_size, sse=sse)

    @classmethod
    def error(cls, size: int, *, sse: bool = False) -> Flood:
        return cls("error", size=size, sse=sse)

    @classmethod
    def keep_alives(cls) -> Flood:
        return cls("keep_alives")

    @classmethod
    def endless_event(cls) -> Flood:
        return cls("endless_event")

    @classmethod
    def unanswered(cls) -> Flood:
        return cls("unanswered")

    @property
    def streams_events(self) -> bool:
        return self.sse or self.kind in ("keep_alives", "endless_event", "unanswered")

    def chunks(self, request_id: Any, cursor: str | None) -> Iterator[bytes]:
        """The answer to the ``tools/list`` request ``request_id`` (page ``cursor``), chunk by chunk."""
        if self.kind == "keep_alives":
            return itertools.repeat(b": keep-alive\n\n")
        if self.kind == "unanswered":
            return iter([b": keep-alive\n\n"])
        if self.kind == "endless_event":
            lines = (b"data: " + b"x" * 1_000 + b"\n") * (_CHUNK_BYTES // 1_000)
            return itertools.chain([b"event: message\n"], itertools.repeat(lines))
        body = self._json(request_id, cursor)
        if not self.sse:
            return body
        return itertools.chain([b"event: message\ndata: "], body, [b"\n\n"])

    def _json(self, request_id: Any, cursor: str | None) -> Iterator[bytes]:
        head = b'{"jsonrpc": "2.0", "id": ' + json.dumps(request_id).encode()
        if self.kind == "error":
            yield head + b', "error": {"code": -32603, "message": "'
            yield from _filler(self.size)
            yield b'"}}'
        elif self.kind == "body":
            yield (
                head
                + b', "result": {'
                + _RESULT_FIELDS
                + b'"tools": [{"name": "big", "inputSchema": {"type": "object"}, "description": "'
            )
            yield from _filler(self.size)
            yield b'"}]}}'
        else:
            start = int(cursor) if cursor else 0
            end = self.count if self.page_size is None else min(self.count, start + self.page_size)
            yield head + b', "result": {' + _RESULT_FIELDS + b'"tools": ['
            for first in range(start, end, _TOOLS_PER_CHUNK):
                last = min(end, first + _TOOLS_PER_CHUNK)
                yield (b"," if first > start else b"") + _tool_chunk(first, last)
            yield b"]" + (f', "nextCursor": "{end}"'.encode() if end < self.count else b"") + b"}}"


# A thousand tools as one template, their names told apart by the chunk's number: two million tools are
# generated with one copy per thousand, not one string each (the server shares the test's process).
_TOOL = '{"name": "tool_%s%03d", "inputSchema": {"type": "object"}}'
_TOOL_CHUNK = ",".join(_TOOL % ("#####", j) for j in range(_TOOLS_PER_CHUNK)).encode()


def _tool_chunk(first: int, last: int) -> bytes:
    """Tools ``first`` to ``last - 1``, named ``tool_00000000`` on."""
    if first % _TOOLS_PER_CHUNK == 0 and last - first == _TOOLS_PER_CHUNK:
        return _TOOL_CHUNK.replace(b"#####", b"%05d" % (first // _TOOLS_PER_CHUNK))
    return ",".join(_TOOL % (f"{i // _TOOLS_PER_CHUNK:05d}", i % _TOOLS_PER_CHUNK) for i in range(first, last)).encode()


def _filler(size: int) -> Iterator[bytes]:
    chunk = b"x" * _CHUNK_BYTES
    for _ in range(size // _CHUNK_BYTES):
        yield chunk
    yield b"x" * (size % _CHUNK_BYTES)


class Flooding:
    """ASGI middleware: while ``flood()`` gives a `Flood`, ``tools/list`` is answered with it. Counts the
    floods started (`sent`) and those being sent right now (`in_progress`)."""

    def __init__(self, app: ASGIApp, flood: Callable[[], Flood | None]) -> None:
        self._app = app
        self._flood = flood
        self._lock = threading.Lock()
        self.sent = 0
        self._in_progress = 0

    @property
    def in_progress(self) -> int:
        with self._lock:
            return self._in_progress

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        flood = self._flood() if scope["type"] == "http" and scope["method"] == "POST" else None
        if flood is None:
            await self._app(scope, receive, send)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            body.extend(message.get("body", b""))
            more = message["type"] == "http.request" and bool(message.get("more_body", False))
        request = _json_object(bytes(body))
        if request.get("method") != "tools/list":
            await self._app(scope, _replay(bytes(body), receive), send)
            return
        params = request.get("params")
        cursor = params.get("cursor") if isinstance(params, dict) else None
        with self._lock:
            self.sent += 1
            self._in_progress += 1
        try:
            await self._send(flood, request.get("id"), cursor if isinstance(cursor, str) else None, receive, send)
        finally:
            with self._lock:
                self._in_progress -= 1

    async def _send(self, flood: Flood, request_id: Any, cursor: str | None, receive: Receive, send: Send) -> None:
        content_type = b"text/event-stream" if flood.streams_events else b"application/json"
        async with anyio.create_task_group() as group:

            async def until_client_leaves() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()

            group.start_soon(until_client_leaves)
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]})
            for chunk in flood.chunks(request_id, cursor):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                # Let the client be heard leaving, and keep an endless keep-alive stream from spinning.
                await anyio.sleep(_KEEP_ALIVE_S if flood.kind == "keep_alives" else 0)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            group.cancel_scope.cancel()


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        decoded = json.loads(body)
    except ValueError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return dict(await receive())

    return replay
