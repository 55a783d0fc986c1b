"""The ``chat-mcp-primer`` console script: the command line, or one line saying how to install it.

The command line's packages (typer, rich, the test servers the demo runs on) are the ``cli`` extra, so a
chat backend that embeds the library does not carry them. The script is installed either way; without the
extra it says what to install instead of printing a traceback.
"""

from __future__ import annotations

import sys

from chat_mcp_primer._extras import is_missing_extra, missing_extra_message

# Exit status of a failure with its reason printed (the command line's EXIT_FAILURE).
_EXIT_FAILURE = 1


def main() -> None:
    """Run the command line (`chat_mcp_primer.cli.main`)."""
    try:
        from chat_mcp_primer.cli import main as run_cli
    except ModuleNotFoundError as exc:
        if not is_missing_extra(exc):
            raise
        print(f"chat-mcp-primer: {missing_extra_message('the command line', 'cli', exc)}", file=sys.stderr)
        sys.exit(_EXIT_FAILURE)
    run_cli()
