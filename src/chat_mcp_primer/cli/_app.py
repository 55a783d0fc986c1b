"""The ``chat-mcp-primer`` command: one typer application, one module per subcommand."""

from __future__ import annotations

import logging
import sys
from enum import StrEnum

import structlog
import typer

# Exit statuses every subcommand keeps to, as the seed CLI did: 0 success, 1 failure, 130 interrupted
# (128 + SIGINT, the shell's convention for Ctrl-C).
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name="chat-mcp-primer",
    help="Workspace MCP tools, callable in the same chat turn that provisioned the workspace.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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
