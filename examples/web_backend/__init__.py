"""A chat backend built on chat-mcp-primer (see app.py)."""
