"""One long-lived MCP session to a workspace server, connected and closed by its owner task."""

from __future__ import annotations

import functools
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import anyio
import httpx2
import mcp_types
from mcp import Client
from mcp.client.session import IncomingMessage
from mcp.client.streamable_http import streamable_http_client
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from chat_mcp_primer.workspace import McpEndpoint, origin_of
from chat_mcp_primer.workspace_mcp._bounds import IDENTITY_ONLY, ResponseGuard
from chat_mcp_primer.workspace_mcp._cache import CacheKey
from chat_mcp_primer.workspace_mcp._failures import SessionError, describe_failure, proxy_answer, worth_retrying
from chat_mcp_primer.workspace_mcp._settings import SessionSettings

# Socket-level limits of the HTTP client under each session. The Clock-driven dial, discovery and
# call timeouts are the ones that decide; these only stop a dead socket from pinning a session
# forever. The read limit is long because a session's event stream stays open between messages.
_TRANSPORT_TIMEOUT = httpx2.Timeout(30.0, read=300.0)


class SessionListener(Protocol):
    """What a session tells its pool about its server."""

    async def tools_changed(self, key: CacheKey) -> None:
        """The server's tool catalogue changed (``tools/list_changed``)."""
        ...

    def refused(self, key: CacheKey, reason: str) -> None:
        """The session cut a response of the server off (too large, compressed unasked), and why."""
        ...


_Answer = TypeVar("_Answer")


@functools.cache
def shared_tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every session of the process: building one loads the CA bundle,
    25 to 70 ms of blocking work that would otherwise stall the event loop at every pool's first dial."""
    return httpx2.create_ssl_context()


class DialSlot:
    """A place among the handshakes a pool runs at once (`SessionSettings.dial_concurrency`). Released
    once, by whichever comes first: the session is ready, it failed, or its time in the slot is up."""

    __slots__ = ("_held", "_on_acquired", "_semaphore", "timer")

    def __init__(self, semaphore: anyio.Semaphore, on_acquired: Callable[[DialSlot], None]) -> None:
        self._semaphore = semaphore
        self._on_acquired = on_acquired
        self._held = False
        # The scope of the timer that releases the slot when its time is up; cancelled on release.
        self.timer = anyio.CancelScope()

    async def acquire(self) -> None:
        await self._semaphore.acquire()
        self._held = True
        self._on_acquired(self)

    def release(self) -> None:
        if self._held:
            self._held = False
            self._semaphore.release()
            self.timer.cancel()


class McpSession:
    """One live MCP client session to one workspace server, owned by a task of a `McpSessions` pool.

    Requests may be sent from any task; connecting and closing happen only in the owner task, as the
    SDK requires.
    """

    def __init__(self, key: CacheKey, endpoint: McpEndpoint, listener: SessionListener, now: float) -> None:
        self.key = key
        self.endpoint = endpoint
        self._listener = listener
        # True once a listing through this session found tools: worth keeping open across turns.
        self.warm = False
        self.last_used = now
        self._client: Client | None = None
        self._failure: BaseException | None = None
        self._ready = anyio.Event()
        self._close_requested = anyio.Event()
        self._closed = anyio.Event()
        self._scope = anyio.CancelScope()
        # Counts what the server sends (set when the owner task connects).
        self._guard: ResponseGuard | None = None
        # Why the session is lost, when the wire said so before the SDK failed: a response cut off at its
        # bound, a redirect off the endpoint's origin or to the login page (never followed), an error page
        # of the app proxy in front of the server. It explains the failure instead.
        self._explanation: SessionError | None = None

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    @property
    def closing(self) -> bool:
        """True once asked to close: no new request should be sent through it."""
        return self._close_requested.is_set()

    @property
    def is_open(self) -> bool:
        return self._client is not None and not self._closed.is_set()

    @property
    def client(self) -> Client:
        if self._client is None or self._closed.is_set():
            raise SessionError(self.endpoint.server, "session closed")
        return self._client

    def close(self) -> None:
        """Ask the owner task to close the session; returns at once."""
        self._close_requested.set()
        if not self._ready.is_set():
            # Still connecting: nothing to close gracefully, so stop the connect itself.
            self._scope.cancel()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def list_tools_page(self, cursor: str | None) -> mcp_types.ListToolsResult:
        return await self._explained(lambda: self.client.list_tools(cursor=cursor, cache_mode="bypass"))

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> mcp_types.CallToolResult:
        return await self._explained(lambda: self.client.call_tool(name, arguments))

    async def _explained(self, request: Callable[[], Awaitable[_Answer]]) -> _Answer:
        """Send ``request``; when it fails after the wire saw why (a response cut off at its bound, an event
        stream that ended unanswered), raise `SessionError` with that reason instead of the SDK's
        stand-in (a parse error, "connection closed")."""
        guard = self._guard
        noted = guard.noted if guard is not None else 0
        explained = self._explanation
        try:
            return await request()
        except Exception as exc:
            if guard is not None and guard.noted != noted and guard.reason is not None:
                raise SessionError(self.endpoint.server, guard.reason) from exc
            if self._explanation is not None and self._explanation is not explained:
                raise self._explained_again(self._explanation) from exc
            raise

    def _explained_again(self, failure: BaseException) -> SessionError:
        """A fresh `SessionError` for ``failure`` (one error instance is never raised in two tasks)."""
        return SessionError(self.endpoint.server, describe_failure(failure), worth_retrying=worth_retrying(failure))

    def _refuse(self, reason: str) -> None:
        # A server that sent more than the bound (or compressed unasked) gets no further request through
        # this session: the pool dials afresh next time, and the bytes already read are dropped.
        self._explanation = SessionError(self.endpoint.server, reason)
        self.close()
        self._listener.refused(self.key, reason)

    async def _wait_ready(self) -> None:
        await self._ready.wait()
        if self._client is None:
            failure = self._failure
            if failure is None:
                raise SessionError(self.endpoint.server, "session closed")
            raise self._explained_again(failure)

    async def _own(self, settings: SessionSettings, tls: ssl.SSLContext | bool, slot: DialSlot) -> None:
        guard = self._guard = ResponseGuard(settings.max_response_bytes, self._refuse)
        try:
            with self._scope:
                await slot.acquire()
                async with (
                    httpx2.AsyncClient(
                        headers={**IDENTITY_ONLY, **dict(self.endpoint.headers)},
                        timeout=_TRANSPORT_TIMEOUT,
                        verify=tls,
                        # The SDK follows a redirect only within the endpoint's origin whatever this says;
                        # off here too, so nothing else using this client could carry the token elsewhere.
                        follow_redirects=False,
                        event_hooks={"response": [self._note_redirect, guard.guard]},
                    ) as http,
                    Client(
                        # The SDK's own bound on one event (1 MiB by default, which a listing with one long
                        # description exceeds) follows ours, so a response is bounded in one place.
                        streamable_http_client(
                            self.endpoint.url, http_client=http, max_sse_event_size=settings.max_response_bytes
                        ),
                        cache=None,
                        mode=settings.mcp_mode,
                        message_handler=self._on_message,
                    ) as client,
                    anyio.create_task_group() as listeners,
                ):
                    if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
                        # 2026 era: tools/list_changed arrives only through a subscription stream.
                        listeners.start_soon(self._listen, client)
                    self._client = client
                    self._ready.set()
                    slot.release()
                    await self._close_requested.wait()
                    listeners.cancel_scope.cancel()
        except* Exception as failures:
            # The session is lost; callers see a SessionError naming the server. `except*` keeps a
            # cancellation that arrives together with the transport's teardown errors propagating.
            self._failure = failures.exceptions[0]
        finally:
            if self._explanation is not None:
                self._failure = self._explanation
            slot.release()
            self._closed.set()
            self._ready.set()

    async def _note_redirect(self, response: httpx2.Response) -> None:
        # Response hooks run before httpx2 works out the redirect, so read the Location header here.
        answer = proxy_answer(response)
        if answer is None:
            if response.has_redirect_location:
                location = origin_of(str(response.request.url.join(response.headers["Location"])))
                if location != origin_of(str(response.request.url)) and self._explanation is None:
                    # (a response cut off is the better explanation)
                    reason = f"redirected to another origin ({location}); not followed"
                    self._explanation = SessionError(self.endpoint.server, reason)
            return
        refusal = SessionError(self.endpoint.server, answer.reason, worth_retrying=answer.worth_retrying)
        if self._explanation is None:
            self._explanation = refusal
        if response.has_redirect_location:
            # The SDK follows a same-origin redirect of a GET (the event stream): failing the request here
            # keeps it from ever reaching the login page, with or without the session's cookie.
            raise refusal

    async def _on_message(self, message: IncomingMessage) -> None:
        # Old protocol era: the notification reaches the message handler. Kept light: handlers run as tasks.
        if isinstance(message, mcp_types.ToolListChangedNotification):
            await self._tools_changed()

    async def _listen(self, client: Client) -> None:
        try:
            async with client.listen(tools_list_changed=True) as subscription:
                async for _ in subscription:
                    await self._tools_changed()
        except Exception:  # no subscription support, or the stream dropped: only the early signal is lost
            return

    async def _tools_changed(self) -> None:
        await self._listener.tools_changed(self.key)
