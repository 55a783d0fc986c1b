"""Structured events: a stable vocabulary of named facts, logged with structlog and handed to callbacks."""

from chat_mcp_primer.events._events import Event, EventHandler, Events

__all__ = ["Event", "EventHandler", "Events"]
