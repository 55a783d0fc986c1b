"""How much a workspace MCP server may send, counted on the wire before anything parses it.

A workspace server is code the chat backend does not control. Every response read from one is counted
as it streams: a body (a JSON answer, an error page) as a whole, an event stream event by event (the
stream itself may stay open for as long as the request's own timeout allows). Past the bound the read
stops with `ResponseRefused` and the session is told why, so the request fails with a reason that says
what happened, and no more than the bound is ever held for one response.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import httpx2

# Asked of every workspace server, so a compliant server (or proxy) never compresses: a compressed body
# is counted before it is decompressed, and a few megabytes of gzip can hold gigabytes.
IDENTITY_ONLY = {"accept-encoding": "identity"}
_EVENT_STREAM = "text/event-stream"
# Two line ends in a row end an event of an event stream, whatever line ends the server uses: "\n\n",
# "\r\r", and "\n\r" (which "\r\n\r\n" and "\n\r\n" contain).
_EVENT_ENDS = (b"\n\n", b"\r\r", b"\n\r")
_KIB = 1024
_MIB = 1024 * 1024


class ResponseRefused(httpx2.SSEError, httpx2.StreamError):
    """A response from a workspace server was cut off unread (too large, or compressed unasked).

    Both a broken stream (what the SDK expects while reading a JSON answer) and an event stream error
    (what it expects while reading events): either way the SDK fails the one request at once, with no
    reconnect, instead of tearing the transport down.
    """


def describe_size(size: int) -> str:
    """``8388608`` as "8 MiB", ``65536`` as "64 KiB", anything else in bytes."""
    if size >= _MIB and size % _MIB == 0:
        return f"{size // _MIB} MiB"
    if size >= _KIB and size % _KIB == 0:
        return f"{size // _KIB} KiB"
    return f"{size} bytes"


class ResponseGuard:
    """Counts the responses of one MCP session (`guard` is its httpx2 response hook).

    ``on_refused`` is called with the reason when a response is cut off. Events that explain a failed
    request without being a fault of the session (an event stream that ended before it answered) are only
    noted: `noted` counts both kinds, and `reason` says what the latest was, so a request that fails after
    `noted` moved can say why instead of the SDK's generic "connection closed".
    """

    def __init__(self, max_bytes: int, on_refused: Callable[[str], None]) -> None:
        self.max_bytes = max_bytes
        self._on_refused = on_refused
        self.noted = 0
        self.reason: str | None = None

    async def guard(self, response: httpx2.Response) -> None:
        """httpx2 response hook: runs before anything reads the body."""
        if not isinstance(response.stream, httpx2.AsyncByteStream):
            return  # a sync client's response: never one of the SDK's
        codings = [value.strip().lower() for value in response.headers.get_list("content-encoding", split_commas=True)]
        unasked = [coding for coding in codings if coding not in ("", "identity")]
        content_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        response.stream = _GuardedStream(
            response.stream,
            self,
            per_event=content_type == _EVENT_STREAM,
            # The answer to a request comes on its POST; a GET stream carries only what the server pushes.
            answer=content_type == _EVENT_STREAM and response.request.method == "POST",
            refusal=f"response compressed ({', '.join(unasked)}) though none was asked for" if unasked else None,
        )

    def note(self, reason: str) -> None:
        self.noted += 1
        self.reason = reason

    def refuse(self, reason: str) -> ResponseRefused:
        self.note(reason)
        self._on_refused(reason)
        return ResponseRefused(reason)

    def too_large(self) -> ResponseRefused:
        return self.refuse(f"response larger than {describe_size(self.max_bytes)}")


class _GuardedStream(httpx2.AsyncByteStream):
    """A response body that raises `ResponseRefused` before handing on the chunk that crosses the bound."""

    def __init__(
        self,
        stream: httpx2.AsyncByteStream,
        guard: ResponseGuard,
        *,
        per_event: bool,
        answer: bool,
        refusal: str | None,
    ) -> None:
        self._stream = stream
        self._guard = guard
        self._per_event = per_event
        self._answer = answer
        self._refusal = refusal

    @property
    def elapsed(self) -> Any:
        return getattr(self._stream, "elapsed", None)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._refusal is not None:
            raise self._guard.refuse(self._refusal)
        limit = self._guard.max_bytes
        counted = 0
        previous = b""
        stream = self._stream.__aiter__()
        try:
            async for chunk in stream:
                if self._per_event:
                    # Bytes since the last event ended (comments and all: a bound, not a parse).
                    window = previous + chunk
                    end = max(window.rfind(pair) for pair in _EVENT_ENDS)
                    counted = counted + len(chunk) if end < 0 else len(window) - end - 2
                    previous = chunk[-1:]
                else:
                    counted += len(chunk)
                if counted > limit:
                    raise self._guard.too_large()
                yield chunk
        finally:
            if isinstance(stream, AsyncGenerator):
                await stream.aclose()
        if self._answer:
            # The SDK stops reading an answer's stream once the answer came: it reached the end without one.
            self._guard.note("the server's event stream ended without an answer")

    async def aclose(self) -> None:
        await self._stream.aclose()
