"""Long-lived MCP sessions to workspace servers: one owner task each, pooled per (workspace, agent, server),
with their handshakes paced."""

from __future__ import annotations

import functools
import ssl
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any, TypeVar

import anyio
import httpx2
import mcp_types
from mcp import Client
from mcp.client.session import IncomingMessage
from mcp.client.streamable_http import streamable_http_client
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from chat_mcp_primer._tasks import BackgroundTasks
from chat_mcp_primer.clock import Clock, run_with_timeout, tags
from chat_mcp_primer.events import EventName, Events
from chat_mcp_primer.workspace import McpEndpoint, origin_of
from chat_mcp_primer.workspace_mcp._bounds import IDENTITY_ONLY, ResponseGuard
from chat_mcp_primer.workspace_mcp._cache import CacheKey
from chat_mcp_primer.workspace_mcp._failures import SessionError, describe_failure
from chat_mcp_primer.workspace_mcp._settings import SessionSettings

# Socket-level limits of the HTTP client under each session. The Clock-driven dial, discovery and
# call timeouts are the ones that decide; these only stop a dead socket from pinning a session
# forever. The read limit is long because a session's event stream stays open between messages.
_TRANSPORT_TIMEOUT = httpx2.Timeout(30.0, read=300.0)


ToolsChanged = Callable[[CacheKey], Awaitable[None]]
"""Told that a server's tool catalogue changed (``tools/list_changed``)."""

Refused = Callable[[CacheKey, str], None]
"""Told that a session cut a server's response off (too large, compressed unasked), and why."""

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

    def __init__(
        self,
        key: CacheKey,
        endpoint: McpEndpoint,
        on_tools_changed: ToolsChanged | None = None,
        now: float = 0.0,
        on_refused: Refused | None = None,
    ) -> None:
        self.key = key
        self.endpoint = endpoint
        self.on_tools_changed = on_tools_changed
        self.on_refused = on_refused
        # True once a listing through this session found tools: worth keeping open across turns.
        self.warm = False
        self.last_used = now
        self._client: Client | None = None
        self._failure: BaseException | None = None
        self._ready = anyio.Event()
        self._close_requested = anyio.Event()
        self._closed = anyio.Event()
        self._scope = anyio.CancelScope()
        # Where the server tried to send us off the endpoint's origin, if it did (never followed).
        self._redirected_to: str | None = None
        # Counts what the server sends (set when the owner task connects); why it cut a response off.
        self._guard: ResponseGuard | None = None
        self._refusal: str | None = None

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
        try:
            return await request()
        except Exception as exc:
            if guard is not None and guard.noted != noted and guard.reason is not None:
                raise SessionError(self.endpoint.server, guard.reason) from exc
            raise

    def _refuse(self, reason: str) -> None:
        # A server that sent more than the bound (or compressed unasked) gets no further request through
        # this session: the pool dials afresh next time, and the bytes already read are dropped.
        self._refusal = reason
        self.close()
        if self.on_refused is not None:
            self.on_refused(self.key, reason)

    async def _wait_ready(self) -> None:
        await self._ready.wait()
        if self._client is None:
            failure = self._failure
            raise SessionError(self.endpoint.server, describe_failure(failure) if failure else "session closed")

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
            if self._redirected_to is not None:
                reason = f"redirected to another origin ({self._redirected_to}); not followed"
                self._failure = SessionError(self.endpoint.server, reason)
        finally:
            if self._refusal is not None:
                self._failure = SessionError(self.endpoint.server, self._refusal)
            slot.release()
            self._closed.set()
            self._ready.set()

    async def _note_redirect(self, response: httpx2.Response) -> None:
        # Response hooks run before httpx2 works out the redirect, so read the Location header here.
        if not response.has_redirect_location:
            return
        location = origin_of(str(response.request.url.join(response.headers["Location"])))
        if location != origin_of(str(response.request.url)):
            self._redirected_to = location

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
        if self.on_tools_changed is not None:
            await self.on_tools_changed(self.key)


class McpSessions:
    """A pool of MCP sessions, one per (workspace, agent, server), each owned by a task of the pool.

    Use as an async context manager: leaving it closes every session and waits for their owner tasks.
    Concurrent requests for the same key share one connect.
    """

    def __init__(
        self, clock: Clock, settings: SessionSettings, events: Events, on_tools_changed: ToolsChanged | None = None
    ) -> None:
        self._clock = clock
        self._settings = settings
        self._events = events
        self._on_tools_changed = on_tools_changed
        self._sessions: dict[CacheKey, McpSession] = {}
        # Every session whose owner task still runs, including those already dropped from _sessions and
        # closing: leaving the pool waits for all of them to end politely.
        self._live: set[McpSession] = set()
        self._owners: BackgroundTasks | None = None
        self._handshakes = anyio.Semaphore(settings.dial_concurrency)

    async def __aenter__(self) -> McpSessions:
        self._owners = BackgroundTasks()
        await self._owners.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        owners, self._owners = self._owners, None
        assert owners is not None
        closing = list(self._live)
        self._sessions.clear()
        for session in closing:
            session.close()

        async def all_closed() -> None:
            for session in closing:
                await session.wait_closed()

        try:
            # Give sessions a moment to end politely (the server is told the session is over); a hung
            # server must not hold up the end of a turn, so after the grace period they are cancelled.
            await run_with_timeout(self._clock, self._settings.close_grace, all_closed, *tags.MCP_CLOSE)
        except TimeoutError:
            self._events.emit(EventName.SESSION_CLOSE_FORCED, sessions=sum(not s.closed for s in closing))
        finally:
            await owners.__aexit__(exc_type, exc, traceback)

    @property
    def open_count(self) -> int:
        return sum(1 for session in self._sessions.values() if session.is_open)

    async def session(self, key: CacheKey, endpoint: McpEndpoint) -> McpSession:
        """An open session for ``key``, connecting if needed within ``dial_timeout``.

        Raises `SessionError` (or `TimeoutError`) when the server cannot be reached; the failed
        session is dropped so the next call dials afresh. An endpoint off its required origin
        (`McpEndpoint.origin`) is refused with a ``session.refused`` event and never dialled.
        """
        if self._owners is None:
            raise RuntimeError("McpSessions is not entered")
        if endpoint.off_origin:
            reason = "endpoint is not on the deployment's origin; not dialled"
            self._events.emit(EventName.SESSION_REFUSED, server=key.server, agent_id=key.agent_id, reason=reason)
            raise SessionError(key.server, reason)
        self.reap_idle()
        session = self._sessions.get(key)
        if session is None or session.closed or session.closing or not session.endpoint.connects_like(endpoint):
            if session is not None:
                session.close()
            session = McpSession(key, endpoint, self._on_tools_changed, self._clock.now(), self._refused)
            self._sessions[key] = session
            self._events.emit(EventName.SESSION_DIALING, server=key.server, agent_id=key.agent_id)
            self._live.add(session)
            self._owners.start_soon(self._own, session, shared_tls_context() if endpoint.verify_tls else False)
        try:
            await run_with_timeout(self._clock, self._settings.dial_timeout, session._wait_ready, *tags.MCP_DIAL)
        except BaseException:
            self.discard(session)
            raise
        session.last_used = self._clock.now()
        return session

    def _refused(self, key: CacheKey, reason: str) -> None:
        self._events.emit(EventName.SESSION_RESPONSE_REFUSED, server=key.server, agent_id=key.agent_id, reason=reason)

    def _start_slot_timer(self, slot: DialSlot) -> None:
        if self._owners is not None:
            self._owners.start_soon(self._end_slot, slot)

    async def _end_slot(self, slot: DialSlot) -> None:
        with slot.timer:
            await self._clock.sleep(self._settings.dial_slot_seconds, *tags.MCP_DIAL_SLOT)
            slot.release()

    def release(self, keys: Iterable[CacheKey]) -> None:
        """A turn is done with ``keys``: close their sessions that never listed tools (nothing to reuse);
        sessions that did stay open for the next turn or chat until idle for ``session_idle_timeout``."""
        for key in keys:
            session = self._sessions.get(key)
            if session is not None and not session.warm:
                self.discard(session)
        self.reap_idle()

    def reap_idle(self) -> None:
        """Close sessions unused for ``session_idle_timeout``. Checked on every use: no timer runs for it."""
        cutoff = self._clock.now() - self._settings.session_idle_timeout
        for session in list(self._sessions.values()):
            if session.last_used < cutoff:
                self._events.emit(
                    EventName.SESSION_IDLE_CLOSED, server=session.key.server, agent_id=session.key.agent_id
                )
                self.discard(session)

    def discard(self, session: McpSession) -> None:
        """Close ``session`` and forget it, so the next request for its key dials again."""
        session.close()
        if self._sessions.get(session.key) is session:
            del self._sessions[session.key]

    def close_other_agents(self, workspace_id: str, keep_agent_id: str | None = None) -> None:
        """Close the sessions of a workspace's agents other than ``keep_agent_id``."""
        for session in list(self._sessions.values()):
            if session.key.workspace_id == workspace_id and session.key.agent_id != keep_agent_id:
                self.discard(session)

    async def _own(self, session: McpSession, tls: ssl.SSLContext | bool) -> None:
        slot = DialSlot(self._handshakes, self._start_slot_timer)
        if self._handshakes.value == 0:
            self._events.emit(EventName.SESSION_DIAL_QUEUED, server=session.key.server, agent_id=session.key.agent_id)
        try:
            await session._own(self._settings, tls, slot)
        finally:
            self._live.discard(session)
            self._events.emit(EventName.SESSION_CLOSED, server=session.key.server, agent_id=session.key.agent_id)
            if self._sessions.get(session.key) is session:
                del self._sessions[session.key]
