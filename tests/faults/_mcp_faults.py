"""Faults a real MCP server cannot be asked to make, injected in front of one over HTTP.

`McpFaults` is ASGI middleware for `WorkspaceMCPServer(middleware=...)`. It reads each request's JSON-RPC
method and, while a rule matches, answers in its place: an HTTP error status, a body that is not
JSON-RPC, nothing at all (the request is held until the client goes away), or the real answer only once
the fake clock has moved on. Everything else reaches the real server untouched.
"""

from __future__ import annotations

import json
import math
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Literal

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chat_mcp_primer.clock import Clock

Action = Literal["status", "malformed", "hold", "delay"]
ANY = "*"
# How often a delayed request looks at the fake clock (real time: the clock lives in the test's thread).
_DELAY_POLL_S = 0.002


@dataclass(slots=True)
class _Rule:
    action: Action
    method: str
    remaining: float
    status: int = 0
    seconds: float = 0.0
    with_session: bool = False

    def matches(self, method: str, has_session: bool) -> bool:
        if self.with_session and not has_session:
            return False
        return self.remaining > 0 and self.method in (ANY, method)


class McpFaults:
    """Rules, consumed in the order added, over the requests to one MCP server.

    ``method`` is a JSON-RPC method (``tools/list``, ``tools/call``, ``initialize``...), ``GET`` or
    ``DELETE`` for the requests without a body, or ``ANY``. ``count`` defaults to every matching request.
    Counters: ``requests`` (by method, all requests), ``injected`` (answered by a rule), `held` (held right
    now).
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock
        self.requests: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self._held = 0
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()

    # -- rules -------------------------------------------------------------------------------------

    def status(self, status: int, *, method: str = ANY, count: float = math.inf, with_session: bool = False) -> None:
        """Answer with HTTP ``status`` and a short text body (a proxy's error page, not JSON-RPC).
        ``with_session``: only requests that carry an MCP session id (older era) match."""
        self._add(_Rule("status", method, count, status=status, with_session=with_session))

    def malformed(self, *, method: str = ANY, count: float = math.inf) -> None:
        """Answer 200 ``application/json`` with a body that is not JSON at all."""
        self._add(_Rule("malformed", method, count))

    def hold(self, *, method: str = ANY, count: float = math.inf) -> None:
        """Accept the request and never answer it, until the client closes the connection."""
        self._add(_Rule("hold", method, count))

    def delay(self, seconds: float, *, method: str = ANY, count: float = math.inf) -> None:
        """Pass the request on only once the fake clock is ``seconds`` past its arrival."""
        if self.clock is None:
            raise ValueError("delays are measured on a clock: give McpFaults one")
        self._add(_Rule("delay", method, count, seconds=seconds))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def _add(self, rule: _Rule) -> None:
        with self._lock:
            self._rules.append(rule)

    @property
    def held(self) -> int:
        """Requests being held (never to be answered, or delayed) right now."""
        with self._lock:
            return self._held

    # -- middleware --------------------------------------------------------------------------------

    def __call__(self, app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)  # lifespan: the MCP session manager starts here
                return
            body = await _read_body(receive)
            method = _method(scope["method"], body)
            has_session = any(name == b"mcp-session-id" for name, _ in scope["headers"])
            with self._lock:
                self.requests[method] += 1
                rule = next((r for r in self._rules if r.matches(method, has_session)), None)
                if rule is not None:
                    rule.remaining -= 1
                    self.injected[method] += 1
            replay = _replaying(body, receive)
            if rule is None:
                await app(scope, replay, send)
            elif rule.action == "status":
                await _respond(send, rule.status, b"injected fault", b"text/plain")
            elif rule.action == "malformed":
                await _respond(send, 200, b'{"jsonrpc": "2.0", "id": ', b"application/json")
            elif rule.action == "hold":
                await self._held_until(receive, None)
            elif await self._held_until(receive, rule.seconds):
                await app(scope, replay, send)

        return middleware

    async def _held_until(self, receive: Receive, seconds: float | None) -> bool:
        """Hold the request until the client leaves (False) or, with ``seconds``, until the fake clock is
        that far past now (True)."""
        deadline = None if seconds is None or self.clock is None else self.clock.now() + seconds
        left: list[bool] = []
        with self._lock:
            self._held += 1
        try:
            async with anyio.create_task_group() as group:

                async def client_leaves() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    left.append(True)
                    group.cancel_scope.cancel()

                async def clock_passes(clock: Clock, deadline: float) -> None:
                    # The fake clock moves in the test's thread, with nothing this thread could wait on.
                    while clock.now() < deadline:  # noqa: ASYNC110
                        await anyio.sleep(_DELAY_POLL_S)
                    group.cancel_scope.cancel()

                group.start_soon(client_leaves)
                if deadline is not None and self.clock is not None:
                    group.start_soon(clock_passes, self.clock, deadline)
        finally:
            with self._lock:
                self._held -= 1
        return not left


async def _read_body(receive: Receive) -> bytes:
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        body.extend(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return bytes(body)


def _method(http_method: str, body: bytes) -> str:
    if not body:
        return http_method
    try:
        decoded = json.loads(body)
    except ValueError:
        return http_method
    if isinstance(decoded, dict) and isinstance(decoded.get("method"), str):
        return str(decoded["method"])
    return http_method


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the already-read body to the app, then passes on whatever comes next."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _respond(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
