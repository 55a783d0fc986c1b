"""The servers the gateway runs (stdio) or connects to (http, sse): one supervisor each, restarting it.

A supervisor owns its server's session in its own task, as the SDK requires: it connects, lists the tools,
publishes them in the `ServerTable`, lists again on ``tools/list_changed``, and when the session is lost
(the process exited, the stream ended, a call found the connection broken) it withdraws the tools, says
why in the report (for a stdio server, with the last line it wrote to stderr), waits out the restart
backoff and starts again. It runs until it is cancelled: the
gateway cancels it when the server's entry is removed or changed, and on shutdown.

What guarantees that no stdio child outlives the gateway:

- Cancelling a supervisor (a removed entry, a clean shutdown on SIGTERM or SIGINT) leaves the SDK's stdio
  client, which closes the child's stdin, gives it two seconds to exit, then sends SIGTERM and at last
  SIGKILL to its whole process group (the SDK starts each child in a session of its own).
- If the gateway is killed outright (SIGKILL, an out-of-memory kill), no code of it runs: the child's stdin
  is a pipe whose only writer was the gateway, so the child reads end-of-file, and every MCP stdio server
  the SDKs build exits on it. A server that ignores end-of-file would be left running; Linux's
  ``PR_SET_PDEATHSIG`` could kill it, but only from the child's side of the fork, which the SDK's stdio
  client does not offer a hook for, and a hand-rolled spawn would lose the SDK's careful shutdown.

http and sse servers are only connected: their lifetime is their own.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from enum import Enum
from typing import Any

import anyio
import httpx2
import mcp_types
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp import Client, MCPError, StdioServerParameters
from mcp.client._transport import Transport as SdkTransport
from mcp.client.session import IncomingMessage
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.client.subscriptions import SubscriptionLost
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from chat_mcp_primer._tasks import TaskGroup
from chat_mcp_primer.clock import Clock, run_with_timeout
from chat_mcp_primer.clock import tags as clock_tags
from chat_mcp_primer.gateway._config import ServerConfig, Transport
from chat_mcp_primer.gateway._report import ServerOutcome, Status, sanitise_reason
from chat_mcp_primer.gateway._settings import GatewaySettings
from chat_mcp_primer.gateway._stderr import StderrTail
from chat_mcp_primer.gateway._table import ServerLine, ServerTable
from chat_mcp_primer.workspace_mcp._failures import describe_failure

_log = structlog.get_logger("chat_mcp_primer.gateway")

# Socket-level limits of the HTTP client to an http server. The Clock-driven connect, list and call
# timeouts are the ones that decide; these only stop a dead socket from pinning a session forever. The
# read limit is long because the session's event stream stays open between messages.
_HTTP_TIMEOUT = httpx2.Timeout(30.0, read=300.0)
# The SDK's sse client takes plain seconds: the same limits.
_SSE_TIMEOUT_SECONDS = 30.0
_SSE_READ_TIMEOUT_SECONDS = 300.0


CONNECTION_ENDED = "the connection ended"


class _Signal(Enum):
    RELIST = "relist"  # the server said tools/list_changed


class ServerLost(Exception):
    """The session ended; the text says why, for the report."""


def error_result(text: str) -> mcp_types.CallToolResult:
    return mcp_types.CallToolResult(content=[mcp_types.TextContent(type="text", text=text)], is_error=True)


@asynccontextmanager
async def _watched(transport: SdkTransport, lost: MemoryObjectSendStream[_Signal | ServerLost]) -> AsyncIterator[Any]:
    """``transport``'s streams, with the end of its read side reported to ``lost``: the one sign, for a stdio
    server, that its process exited."""
    async with transport as (read, write):
        relayed, receive = anyio.create_memory_object_stream[Any](0)

        async def relay() -> None:
            try:
                async with relayed:
                    async for message in read:
                        await relayed.send(message)
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                pass
            with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                lost.send_nowait(ServerLost(CONNECTION_ENDED))

        async with TaskGroup() as relays:
            relays.start_soon(relay)
            try:
                yield receive, write
            finally:
                relays.cancel()
                receive.close()


class ServerSupervisor:
    """Runs one server for as long as its entry stands (see the module's docstring)."""

    def __init__(
        self,
        config: ServerConfig,
        table: ServerTable,
        settings: GatewaySettings,
        clock: Clock,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self._table = table
        self._settings = settings
        self._clock = clock
        self._environ = os.environ if environ is None else environ
        self._client: Client | None = None
        self._signals: MemoryObjectSendStream[_Signal | ServerLost] | None = None
        # Values a reason must never show: the entry's env and header values are often tokens.
        self._hidden = tuple(value for _, value in (*config.env, *config.headers))
        table.declare(config.name, self)

    @property
    def name(self) -> str:
        return self.config.name

    # -- the loop -------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, serve, and restart with backoff, until cancelled."""
        delay: float | None = None
        while True:
            started = self._clock.now()
            reason, was_up = await self._run_once()
            if was_up and self._clock.now() - started >= self._settings.restart_reset_after:
                delay = None  # it ran long enough: this crash is not part of a crash loop
            delay = self._settings.restart_delay(delay)
            self._publish(ServerOutcome(Status.FAILED, reason=self._reason(f"{reason}; restarting in {delay:g} s")))
            _log.warning("gateway.server_down", server=self.name, reason=reason, restart_in=delay)
            await self._clock.sleep(delay, *clock_tags.GATEWAY_RESTART)

    async def _run_once(self) -> tuple[str, bool]:
        """One life of the session: why it ended, and whether it listed tools before it did."""
        if not self._is_stdio:
            return await self._live(None)
        # The child's stderr, kept for its last words: a server that fails to start usually says why there.
        with StderrTail() as stderr:
            async with TaskGroup() as drains:
                drains.start_soon(stderr.drain)
                reason, was_up = await self._live(stderr)
                drains.cancel()
            return self._with_last_words(reason, stderr), was_up

    async def _live(self, stderr: StderrTail | None) -> tuple[str, bool]:
        """Connect, list, publish and serve until the session is lost: why (empty when cancelled), and
        whether it listed tools before it was."""
        send, receive = anyio.create_memory_object_stream[_Signal | ServerLost](float("inf"))
        was_up = False
        reason = ""
        # The connect deadline cancels the whole session's scope: the client's own task groups open inside
        # it while connecting and stay open after, so no narrower scope can wrap the connect alone.
        session = anyio.CancelScope()
        expired = False

        async def expire() -> None:
            nonlocal expired
            await self._clock.sleep(self._settings.connect_timeout, *clock_tags.GATEWAY_CONNECT, clock_tags.TIMEOUT)
            expired = True
            session.cancel()

        try:
            with send, receive, session:
                self._signals = send
                async with TaskGroup() as timers, AsyncExitStack() as stack:
                    timers.start_soon(expire)
                    try:
                        client = await stack.enter_async_context(self._client_for(send, stderr, stack))
                    finally:
                        if stderr is not None:
                            stderr.spawned()
                    timers.cancel()
                    async with TaskGroup() as listeners:
                        if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
                            # 2026 era: tools/list_changed arrives only through a subscription stream.
                            listeners.start_soon(self._listen, client, send)
                        await self._list_and_publish(client)
                        was_up = True
                        await self._serve(client, receive)
        except* TimeoutError:
            reason = f"did not list its tools within {self._settings.list_timeout:g} s"
        except* Exception as failures:
            reason = self._describe(failures)
        finally:
            self._client = None
            self._signals = None
            if expired:
                reason = f"did not connect within {self._settings.connect_timeout:g} s"
        return reason, was_up

    async def _serve(self, client: Client, signals: MemoryObjectReceiveStream[_Signal | ServerLost]) -> None:
        async for signal in signals:
            if isinstance(signal, ServerLost):
                raise signal
            await self._list_and_publish(client)

    @property
    def _is_stdio(self) -> bool:
        return self.config.transport is Transport.STDIO

    def _client_for(
        self, signals: MemoryObjectSendStream[_Signal | ServerLost], stderr: StderrTail | None, stack: AsyncExitStack
    ) -> Client:
        config = self.config
        transport: SdkTransport
        if config.transport is Transport.STDIO:
            # The whole environment, with the entry's env over it, as Coder's agent starts a server: a server
            # that reads a variable the template set for the workspace finds it.
            environment = {**self._environ, **dict(config.env)}
            parameters = StdioServerParameters(command=config.command, args=list(config.args), env=environment)
            assert stderr is not None
            transport = stdio_client(parameters, errlog=stderr.writer)
        elif config.transport is Transport.HTTP:
            http = httpx2.AsyncClient(headers=dict(config.headers), timeout=_HTTP_TIMEOUT)
            stack.push_async_callback(http.aclose)
            transport = streamable_http_client(config.url, http_client=http)
        else:
            transport = sse_client(
                config.url,
                headers=dict(config.headers),
                timeout=_SSE_TIMEOUT_SECONDS,
                sse_read_timeout=_SSE_READ_TIMEOUT_SECONDS,
            )
        return Client(_watched(transport, signals), cache=None, message_handler=self._on_message)

    # -- tools ----------------------------------------------------------------------------------------

    async def _list_and_publish(self, client: Client) -> None:
        tools, cut = await run_with_timeout(
            self._clock, self._settings.list_timeout, lambda: self._list_all(client), *clock_tags.GATEWAY_LIST
        )
        self._client = client
        status = Status.OK if tools else Status.EMPTY
        reason = None
        if cut:
            reason = self._reason(f"listed more than {self._settings.max_tools_per_server} tools; the first are kept")
        self._publish(ServerOutcome(status, tools=len(tools), reason=reason), tools=tools)
        _log.info("gateway.server_listed", server=self.name, tools=len(tools))

    async def _list_all(self, client: Client) -> tuple[tuple[mcp_types.Tool, ...], bool]:
        """Every page of the listing, up to the bounds: the tools kept, and whether any were cut off."""
        limit = self._settings.max_tools_per_server
        tools: list[mcp_types.Tool] = []
        cursor: str | None = None
        seen: set[str] = set()
        for _ in range(self._settings.max_list_pages):
            page = await client.list_tools(cursor=cursor, cache_mode="bypass")
            tools.extend(page.tools)
            if len(tools) > limit:
                return tuple(tools[:limit]), True
            cursor = page.next_cursor
            if cursor is None:
                return tuple(tools), False
            if cursor in seen:
                raise ServerLost("its listing repeats a cursor")
            seen.add(cursor)
        raise ServerLost(f"its listing runs past {self._settings.max_list_pages} pages")

    async def call(self, tool: str, arguments: dict[str, Any]) -> mcp_types.CallToolResult:
        """Call ``tool`` on the live session; every failure is an error result naming the server."""
        client = self._client
        if client is None:
            return error_result(f"MCP server {self.name!r} is not running")
        try:
            result = await run_with_timeout(
                self._clock,
                self._settings.call_timeout,
                lambda: client.call_tool(tool, arguments),
                *clock_tags.GATEWAY_CALL,
            )
        except TimeoutError:
            return error_result(f"{tool} on MCP server {self.name!r} timed out after {self._settings.call_timeout:g} s")
        except Exception as exc:
            reason = self._describe(exc)
            if not isinstance(exc, MCPError) or exc.error.code == mcp_types.CONNECTION_CLOSED:
                # The connection failed under the call (the server answered nothing): the session is lost.
                self._lost(reason)
            return error_result(f"{tool} on MCP server {self.name!r} failed: {reason}")
        # The server's own _meta (its identity stamp) is not the gateway's to pass on as its own.
        return result.model_copy(update={"meta": None})

    # -- what the server says -------------------------------------------------------------------------

    async def _on_message(self, message: IncomingMessage) -> None:
        # Old protocol era: the notification reaches the message handler (as a task of its own: kept light).
        if isinstance(message, mcp_types.ToolListChangedNotification) and self._signals is not None:
            self._signals.send_nowait(_Signal.RELIST)

    async def _listen(self, client: Client, signals: MemoryObjectSendStream[_Signal | ServerLost]) -> None:
        try:
            async with client.listen(tools_list_changed=True) as subscription:
                async for _ in subscription:
                    signals.send_nowait(_Signal.RELIST)
        except SubscriptionLost:
            # The stream dropped without the server closing it: for an http server, the one sign that it went
            # away between calls.
            signals.send_nowait(ServerLost("its event stream dropped"))
        except Exception:  # no subscription support: only the early signal of a change is lost
            return

    def _lost(self, reason: str) -> None:
        if self._signals is not None:
            self._signals.send_nowait(ServerLost(reason))

    # -- the report -----------------------------------------------------------------------------------

    def _publish(self, outcome: ServerOutcome, tools: tuple[mcp_types.Tool, ...] = ()) -> None:
        up = outcome.status in (Status.OK, Status.EMPTY)
        self._table.update(self.name, self, ServerLine(outcome, tools if up else (), self if up else None))

    def _reason(self, text: str) -> str:
        return sanitise_reason(text, self._settings.max_reason_chars, self._hidden)

    def _describe(self, failure: BaseException) -> str:
        while isinstance(failure, BaseExceptionGroup) and failure.exceptions:
            failure = failure.exceptions[0]
        if isinstance(failure, ServerLost):
            return str(failure)
        if isinstance(failure, MCPError) and failure.error.code == mcp_types.CONNECTION_CLOSED:
            return CONNECTION_ENDED  # for a stdio server: its process exited (its last words follow)
        if isinstance(failure, OSError) and self._is_stdio:
            # The command could not be started: say why, not where (the path is the gateway's machine's).
            return f"cannot start its command: {failure.strerror or type(failure).__name__}"
        return describe_failure(failure)

    def _with_last_words(self, reason: str, stderr: StderrTail) -> str:
        """``reason``, with the last line the server wrote to stderr (its own words, sanitised later)."""
        if not reason:
            return reason  # cancelled: nobody reads it
        if reason == CONNECTION_ENDED:
            reason = "the server exited"
        last = stderr.last_line()
        return f"{reason}: {last}" if last else reason
