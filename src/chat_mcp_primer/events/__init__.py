"""Structured events: a stable vocabulary of named facts (`EventName`), logged with structlog and handed to
callbacks."""

from chat_mcp_primer.events._events import Event, EventHandler, Events
from chat_mcp_primer.events._names import AGENT_EVENTS, CHAT_EVENTS, RUNTIME_EVENTS, EventName

__all__ = ["AGENT_EVENTS", "CHAT_EVENTS", "RUNTIME_EVENTS", "Event", "EventHandler", "EventName", "Events"]
