"""``GET /workspaces/{id}/watch``: Server-Sent Events carrying the full Workspace whenever it changes.

The stream opens with ``event: ping``, then ``event: data`` with the Workspace, then one ``data`` event
per visible change, and a ``ping`` every 15 s of the fake's clock. Since state is a function of the clock,
the stream re-renders only when the clock has moved or the store has been written, and sends only what
differs from what it last sent. It ends when the client goes away or the server is stopping.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator

import anyio
from starlette.responses import StreamingResponse

from chat_mcp_primer.testing._fake_coder._render import Renderer
from chat_mcp_primer.testing._fake_coder._state import CoderState
from chat_mcp_primer.testing._fake_coder._wire import encode_json

# coderd's `httpapi.HeartbeatInterval`.
PING_INTERVAL_SECONDS = 15.0
# Real time between looks at the clock: short enough that a test reading the stream right after moving
# a `MockClock` sees the change at once, long enough to cost nothing.
POLL_INTERVAL_SECONDS = 0.01
PING_EVENT = b"event: ping\n\n"
_STREAM_HEADERS = {"cache-control": "no-cache", "connection": "keep-alive", "x-accel-buffering": "no"}


def watch_response(state: CoderState, workspace_id: str, stopping: threading.Event) -> StreamingResponse:
    return StreamingResponse(
        _events(state, workspace_id, stopping), media_type="text/event-stream", headers=_STREAM_HEADERS
    )


async def _events(state: CoderState, workspace_id: str, stopping: threading.Event) -> AsyncIterator[bytes]:
    yield PING_EVENT
    last_ping = state.now()
    seen: tuple[float, int] | None = None
    sent: bytes | None = None
    while not stopping.is_set():
        with state.lock:
            now = state.now()
            current = (now, state.generation)
            body = sent
            if current != seen:
                seen = current
                body = encode_json(Renderer(state, now).workspace(state.workspaces[workspace_id]))
        if body is not None and body != sent:
            sent = body
            yield b"event: data\ndata: " + body + b"\n"
        if now - last_ping >= PING_INTERVAL_SECONDS:
            last_ping = now
            yield PING_EVENT
        await anyio.sleep(POLL_INTERVAL_SECONDS)
