"""The ``chat-mcp-primer`` command line: ``demo``, ``update-workspace``, ``serve-mcp`` and ``gateway``."""

from __future__ import annotations

import typer

from chat_mcp_primer.cli._app import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, app, install_root_options

__all__ = ["EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "app", "build_app", "main"]


def build_app() -> typer.Typer:
    """The whole ``chat-mcp-primer`` command: every subcommand and ``--version``."""
    # Importing a command module registers its command on `app`.
    from chat_mcp_primer.cli import demo, gateway, serve_mcp, update_workspace  # noqa: F401

    install_root_options(app)
    return app


def main() -> None:
    """Entry point of the ``chat-mcp-primer`` console script and of ``python -m chat_mcp_primer``."""
    build_app()()
