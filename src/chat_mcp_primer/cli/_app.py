"""The ``chat-mcp-primer`` command: one typer application, one module per subcommand."""

from __future__ import annotations

import logging
import sys
from enum import StrEnum
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import structlog
import typer

DISTRIBUTION = "chat-mcp-primer"
# Exit statuses every subcommand keeps to, as the seed CLI did: 0 success, 1 failure, 2 usage error
# (click's own status for a command line it cannot use), 130 interrupted (128 + SIGINT, the shell's
# convention for Ctrl-C).
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name=DISTRIBUTION,
    help="Workspace MCP tools, callable in the same chat turn that provisioned the workspace.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click output: a usage error is one "Error: ..." line, never wrapped into a box at the terminal's
    # width, so it reads the same in a terminal, a log and a test.
    rich_markup_mode=None,
)


def version_text() -> str:
    """``chat-mcp-primer 0.1.0``: the installed distribution's version."""
    try:
        return f"{DISTRIBUTION} {version(DISTRIBUTION)}"
    except PackageNotFoundError:  # imported from a source tree that was never installed
        return f"{DISTRIBUTION} (version unknown: not installed)"


def _print_version(requested: bool) -> None:
    if requested:
        typer.echo(version_text())
        raise typer.Exit(EXIT_OK)


def _root(
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    pass


def install_root_options(target: typer.Typer) -> None:
    """Give the whole command its own options (``--version``). Only the ``chat-mcp-primer`` entry point does
    this: a module run on its own (``python -m chat_mcp_primer.cli.update_workspace``) stays a single command."""
    target.callback()(_root)


def run_as_module(command_name: str) -> None:
    """``python -m chat_mcp_primer.cli.<module> [OPTIONS]``: that one command, whether or not others are
    registered on `app`."""
    args = sys.argv[1:]
    if isinstance(typer.main.get_command(app), typer.core.TyperGroup):
        args = [command_name, *args]
    app(args=args, prog_name=f"{DISTRIBUTION} {command_name}")


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


def configure_logging(level: LogLevel) -> None:
    """Send structlog events and the standard library's log records (httpx, the MCP SDK) at ``level`` or
    above to stderr, so stdout stays free for results (``--json``, the MCP stdio protocol). Neither ever
    carries a token: events name ids, and httpx logs URLs, not headers."""
    numeric = logging.getLevelNamesMapping()[level.name]
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s", force=True)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
