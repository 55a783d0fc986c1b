"""A pool of long-lived MCP sessions to workspace servers: one owner task each, one session per (workspace,
agent, server), with their handshakes paced."""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType

import anyio

from chat_mcp_primer._tasks import BackgroundTasks
from chat_mcp_primer.clock import Clock, run_with_timeout, tags
from chat_mcp_primer.events import EventName, Events
from chat_mcp_primer.workspace import McpEndpoint
from chat_mcp_primer.workspace_mcp._cache import CacheKey
from chat_mcp_primer.workspace_mcp._failures import SessionError
from chat_mcp_primer.workspace_mcp._session import DialSlot, McpSession, shared_tls_context
from chat_mcp_primer.workspace_mcp._settings import SessionSettings

ToolsChanged = Callable[[CacheKey], Awaitable[None]]
"""Told that a server's tool catalogue changed (``tools/list_changed``)."""


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
        session = self._dialled(key, endpoint)
        try:
            await run_with_timeout(self._clock, self._settings.dial_timeout, session._wait_ready, *tags.MCP_DIAL)
        except BaseException:
            self.discard(session)
            raise
        session.last_used = self._clock.now()
        return session

    def open(self, key: CacheKey, endpoint: McpEndpoint) -> None:
        """Start dialling a session for ``key`` unless one is open or being dialled, without waiting for it:
        a later `session` finds it ready, still dialling, or failed (and dials afresh). An endpoint that
        `session` would refuse is left alone."""
        if self._owners is not None and not endpoint.off_origin:
            self._dialled(key, endpoint)

    def _dialled(self, key: CacheKey, endpoint: McpEndpoint) -> McpSession:
        """The session for ``key``: the one open or dialling for this endpoint, else a new one dialling."""
        assert self._owners is not None
        self.reap_idle()
        session = self._sessions.get(key)
        if session is None or session.closed or session.closing or not session.endpoint.connects_like(endpoint):
            if session is not None:
                session.close()
            session = McpSession(key, endpoint, self, self._clock.now())
            self._sessions[key] = session
            self._events.emit(EventName.SESSION_DIALING, server=key.server, agent_id=key.agent_id)
            self._live.add(session)
            self._owners.start_soon(self._own, session, shared_tls_context() if endpoint.verify_tls else False)
        return session

    async def tools_changed(self, key: CacheKey) -> None:
        if self._on_tools_changed is not None:
            await self._on_tools_changed(key)

    def refused(self, key: CacheKey, reason: str) -> None:
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
