"""The gateway: its config files, one supervisor per declared server, the listing's notifier, the HTTP app."""

from __future__ import annotations

import contextlib
import math
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import structlog
import uvicorn
from mcp.server import Server
from starlette.applications import Starlette

from chat_mcp_primer._tasks import BackgroundTasks
from chat_mcp_primer.clock import Clock, SystemClock
from chat_mcp_primer.clock import tags as clock_tags
from chat_mcp_primer.gateway._children import ServerSupervisor
from chat_mcp_primer.gateway._config import ConfigFileError, GatewayConfig, ServerConfig, load_config
from chat_mcp_primer.gateway._report import DiscoveryReport, new_run_id, sanitise_reason
from chat_mcp_primer.gateway._server import ListingNotifier, ReportWaits, build_app, build_mcp_server
from chat_mcp_primer.gateway._settings import GatewaySettings
from chat_mcp_primer.gateway._table import ServerTable

_log = structlog.get_logger("chat_mcp_primer.gateway")

# What a config file looks like to the poll: (inode, size, mtime in ns), None when it does not exist, and
# the error's number when it cannot be looked at.
_Stamp = tuple[int, int, int] | int | None


def _stamp(path: Path) -> _Stamp:
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return exc.errno or -1
    return (status.st_ino, status.st_size, status.st_mtime_ns)


@dataclass(frozen=True, slots=True)
class _Running:
    config: ServerConfig
    scope: anyio.CancelScope


class Gateway:
    """Serves the servers of ``config_paths`` (in order of precedence) for as long as it is entered.

    ``async with Gateway(paths) as gateway:`` reads the files (`ConfigFileError` if one exists but cannot be
    used, before anything starts), starts a supervisor per valid server, and watches the files: every
    `GatewaySettings.config_poll_seconds` on ``clock`` it compares each file's inode, size and modification
    time, and on a change reads them again: servers added are started, removed ones stopped, changed ones
    restarted; a file that turns unusable leaves the servers as they were, until it is usable again. Serve
    `app` (`serve_http`) for clients to reach the tools and the report. Leaving the block stops every
    server (see `chat_mcp_primer.gateway._children` for what that guarantees of stdio children).

    Why polling: it needs nothing beyond the standard library, it sees a file created in a directory that
    did not have one, a file replaced by a rename (an editor's save) and a file deleted alike, and on an
    injected clock a test decides exactly when it looks. A file watcher (inotify) would answer sooner but
    needs a dependency and still a debounce, like the 250 ms Coder's agent waits.
    """

    def __init__(
        self,
        config_paths: Sequence[Path],
        *,
        settings: GatewaySettings | None = None,
        clock: Clock | None = None,
        environ: Mapping[str, str] | None = None,
        allowed_hosts: Sequence[str] = (),
    ) -> None:
        self.config_paths = tuple(config_paths)
        self.settings = settings or GatewaySettings()
        self.clock = clock or SystemClock()
        self._environ = os.environ if environ is None else environ
        self.table = ServerTable(new_run_id())
        self.notifier = ListingNotifier(self.table)
        # The aggregated MCP server (an in-process `mcp.Client` can talk to it directly), and the HTTP app.
        self.server: Server[Any] = build_mcp_server(self.table, self.notifier)
        self.app: Starlette = build_app(self.server, self.table, allowed_hosts, ReportWaits(self.clock, self.settings))
        self._running: dict[str, _Running] = {}
        self._tasks: BackgroundTasks | None = None
        self.config = GatewayConfig()

    @property
    def run_id(self) -> str:
        return self.table.run_id

    def report(self) -> DiscoveryReport:
        return self.table.report()

    async def __aenter__(self) -> Gateway:
        stamps = self._stamps()
        config = load_config(self.config_paths, self._environ)  # an unusable file fails here, before any start
        tasks = self._tasks = BackgroundTasks()
        await tasks.__aenter__()
        try:
            self._apply(config)
            tasks.start_soon(self.notifier.run)
            tasks.start_soon(self._watch_config, stamps)
        except BaseException:
            await tasks.__aexit__(None, None, None)
            raise
        _log.info("gateway.started", run_id=self.run_id, servers=len(config.servers), invalid=len(config.invalid))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        tasks, self._tasks = self._tasks, None
        self.notifier.close()
        if tasks is not None:
            await tasks.__aexit__(exc_type, exc, traceback)  # cancels every supervisor and waits for its child
        self._running.clear()
        _log.info("gateway.stopped", run_id=self.run_id)

    # -- the config -----------------------------------------------------------------------------------

    def _stamps(self) -> tuple[_Stamp, ...]:
        return tuple(_stamp(path) for path in self.config_paths)

    async def _watch_config(self, stamps: tuple[_Stamp, ...]) -> None:
        while True:
            await self.clock.sleep(self.settings.config_poll_seconds, *clock_tags.GATEWAY_CONFIG_POLL)
            seen = self._stamps()
            if seen == stamps:
                continue
            stamps = seen
            try:
                config = load_config(self.config_paths, self._environ)
            except ConfigFileError as exc:
                _log.warning("gateway.config_unusable", reason=str(exc))
                continue
            _log.info("gateway.config_changed", servers=len(config.servers), invalid=len(config.invalid))
            self._apply(config)

    def _apply(self, config: GatewayConfig) -> None:
        """Bring the running servers and the report in line with ``config``."""
        tasks = self._tasks
        assert tasks is not None
        wanted = {server.name: server for server in config.servers}
        for name, running in list(self._running.items()):
            if wanted.get(name) != running.config:
                running.scope.cancel()  # its child is closed in the background, by its own task
                del self._running[name]
        declared = set(config.names)
        for name in [name for name in self.table.report().servers if name not in declared]:
            self.table.remove(name)
        for entry in config.invalid:
            self.table.declare_invalid(entry.name, sanitise_reason(entry.reason, self.settings.max_reason_chars))
        for server in config.servers:
            if server.name not in self._running:
                scope = anyio.CancelScope()
                supervisor = ServerSupervisor(server, self.table, self.settings, self.clock, self._environ)
                self._running[server.name] = _Running(server, scope)
                tasks.start_soon(self._supervise, supervisor, scope)
        self.config = config

    @staticmethod
    async def _supervise(supervisor: ServerSupervisor, scope: anyio.CancelScope) -> None:
        with scope:
            await supervisor.run()


# -- serving ------------------------------------------------------------------------------------------


class _UvicornWithoutSignals(uvicorn.Server):
    """uvicorn, leaving signals to the caller: its own handling re-raises SIGTERM once it has stopped, which
    would end the process before the gateway's children are closed."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_http(
    gateway: Gateway, listener: socket.socket, stop: anyio.Event, *, log_level: str = "warning"
) -> None:
    """Serve ``gateway.app`` with uvicorn on ``listener`` (bound and listening) until ``stop`` is set; requests
    in flight then get `GatewaySettings.shutdown_grace_seconds`. Once per gateway (the SDK's session manager
    runs once), inside its ``async with`` block; asyncio only (uvicorn's loop); signals are the caller's to
    handle."""
    config = uvicorn.Config(
        gateway.app,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=math.ceil(gateway.settings.shutdown_grace_seconds),
    )
    server = _UvicornWithoutSignals(config)
    async with BackgroundTasks() as tasks:

        async def stop_when_asked() -> None:
            await stop.wait()
            gateway.notifier.close()  # subscription streams end now, not at the end of uvicorn's grace
            gateway.table.stop_waits()  # and held reads of the report are answered
            server.should_exit = True

        tasks.start_soon(stop_when_asked)
        await server.serve(sockets=[listener])
