"""``chat-mcp-primer gateway``: a workspace's ``.mcp.json`` servers on one loopback port, for Coder's app proxy.

Runs inside the workspace (a ``coder_script`` starts it, a ``coder_app`` points at its port). See
`chat_mcp_primer.gateway` for what it serves and how.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import anyio
import typer

from chat_mcp_primer._tasks import BackgroundTasks
from chat_mcp_primer.cli._app import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    LogLevel,
    app,
    configure_logging,
    run_as_module,
)
from chat_mcp_primer.cli._http_transport import HttpEndpoint, StartupError, listen
from chat_mcp_primer.gateway import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    DISCOVERY_PATH,
    MCP_PATH,
    ConfigFileError,
    Gateway,
    default_config_paths,
    serve_http,
)

COMMAND_NAME = "gateway"
_LISTEN_OPTION = "--listen"


@dataclass(frozen=True, slots=True)
class GatewayRun:
    """What the command was asked to do, checked."""

    endpoint: HttpEndpoint
    config_paths: tuple[Path, ...]
    log_level: LogLevel


def _say(message: str) -> None:
    typer.echo(f"{COMMAND_NAME}: {message}", err=True)


async def run_gateway(run: GatewayRun) -> int:
    """Serve until SIGTERM or SIGINT; every server is stopped before this returns. The exit status: 0 after
    SIGTERM, 130 after SIGINT. `StartupError` when the port is taken, `ConfigFileError` when a config file
    cannot be used; both before anything starts."""
    listener = listen(run.endpoint)
    try:
        async with Gateway(run.config_paths) as gateway, BackgroundTasks() as tasks:
            stop = anyio.Event()
            received: list[int] = []

            async def stop_on_signal() -> None:
                with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    async for number in signals:
                        received.append(number)
                        stop.set()
                        return

            tasks.start_soon(stop_on_signal)
            base = run.endpoint.url.removesuffix(MCP_PATH)
            _say(
                f"serving {len(gateway.config.servers)} MCP server(s) on {run.endpoint.url} "
                f"(report at {base}{DISCOVERY_PATH}, run {gateway.run_id})"
            )
            await serve_http(gateway, listener, stop, log_level=run.log_level.value)
    finally:
        listener.close()
    _say("stopped; every server closed")
    return EXIT_INTERRUPTED if signal.SIGINT in received else 0


@app.command(COMMAND_NAME)
def gateway(
    listen_at: Annotated[
        str,
        typer.Option(
            _LISTEN_OPTION,
            metavar="HOST:PORT",
            help="Where to serve (loopback only): /mcp for MCP clients, /discovery for the report.",
        ),
    ] = f"{DEFAULT_HOST}:{DEFAULT_PORT}",
    config: Annotated[
        list[Path] | None,
        typer.Option(
            "--config",
            metavar="PATH",
            help="A .mcp.json file; repeat in order of precedence. Default: ./.mcp.json, then ~/.mcp.json.",
            show_default=False,
        ),
    ] = None,
    log_level: Annotated[
        LogLevel, typer.Option("--log-level", case_sensitive=False, help="Logs go to stderr.")
    ] = LogLevel.WARNING,
) -> None:
    """Serve the workspace's .mcp.json MCP servers on one Streamable HTTP endpoint, with a discovery report.

    Tools are named server__tool. A config file that does not exist counts as empty and is picked up once it
    is created; edits are picked up without a restart. Exit status: 0 stopped (SIGTERM); 1 cannot start (the
    port is taken); 2 usage error or a config file that cannot be used; 130 interrupted.
    """
    try:
        endpoint = HttpEndpoint.parse(listen_at, _LISTEN_OPTION)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=f"'{_LISTEN_OPTION}'") from None
    if not endpoint.is_loopback:
        raise typer.BadParameter(
            f"refusing to serve on {endpoint.host}: the gateway has no authentication of its own, so it listens "
            "on loopback only (the app proxy reaches it there)",
            param_hint=f"'{_LISTEN_OPTION}'",
        )
    run = GatewayRun(endpoint, tuple(config) if config else default_config_paths(), log_level)
    configure_logging(log_level)
    try:
        status = anyio.run(run_gateway, run, backend="asyncio")  # uvicorn needs asyncio
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except ConfigFileError as exc:
        _say(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    except StartupError as exc:
        _say(str(exc))
        raise typer.Exit(EXIT_FAILURE) from None
    raise typer.Exit(status)


if __name__ == "__main__":
    run_as_module(COMMAND_NAME)
