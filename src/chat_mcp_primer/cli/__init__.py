"""The ``chat-mcp-primer`` command line: ``demo``, ``update-workspace`` and ``serve-mcp``."""

from __future__ import annotations

from chat_mcp_primer.cli._app import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, app

__all__ = ["EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_OK", "app", "main"]


def main() -> None:
    """Entry point of the ``chat-mcp-primer`` console script and of ``python -m chat_mcp_primer``."""
    # Importing a command module registers its command on `app`.
    from chat_mcp_primer.cli import demo, serve_mcp, update_workspace  # noqa: F401

    app()
