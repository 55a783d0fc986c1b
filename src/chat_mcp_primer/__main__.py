"""``python -m chat_mcp_primer``: the same as the ``chat-mcp-primer`` command."""

from chat_mcp_primer._console import main

main()
