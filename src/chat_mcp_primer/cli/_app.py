"""The ``chat-mcp-primer`` command: one typer application, one module per subcommand."""

from __future__ import annotations

import logging
import sys

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


def configure_logging(level: str) -> None:
    """Send the library's events at ``level`` and above to stderr, keeping stdout for results."""
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise typer.BadParameter(f"unknown log level {level!r}", param_hint="--log-level")
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
