from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import structlog

# Events go through structlog into the standard library's "chat_mcp_primer" logger, as a library's logs
# should: silent until the application configures logging, and then at the levels it chose. A structlog
# application sees the same key-value events through its stdlib integration.
_stdlib_logger = logging.getLogger("chat_mcp_primer")
_stdlib_logger.addHandler(logging.NullHandler())
_logger = structlog.wrap_logger(
    _stdlib_logger,
    wrapper_class=structlog.stdlib.BoundLogger,
    processors=[
        structlog.stdlib.filter_by_level,
        structlog.processors.KeyValueRenderer(key_order=["event"], sort_keys=True),
    ],
)


@dataclass(frozen=True, slots=True)
class Event:
    """One named fact, such as ``primer.attempt`` with ``attempt=3 outcome="empty"``.

    Names are a stable vocabulary that tests and dashboards may rely on. Fields never carry secrets: the
    emitters pass identifiers, counts and outcomes, never tokens, headers or URLs with credentials.
    """

    name: str
    at: float
    fields: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


EventHandler = Callable[[Event], None]


class Events:
    """Emits events to structlog and to an optional handler (the runtime's ``on_event``).

    The handler runs inline and must be quick; an exception it raises is logged and swallowed, so a
    faulty dashboard hook cannot break a turn. `bind` gives an emitter whose every event carries some
    fields, as a chat's turn binds ``chat_id``: every event about a chat says which chat.
    """

    __slots__ = ("_bound", "_handler", "_now")

    def __init__(
        self, now: Callable[[], float], handler: EventHandler | None = None, bound: Mapping[str, Any] | None = None
    ) -> None:
        self._now = now
        self._handler = handler
        self._bound = dict(bound) if bound else {}

    def bind(self, **fields: Any) -> Events:
        """The same events, each also carrying ``fields`` (an event's own fields win)."""
        return Events(self._now, self._handler, {**self._bound, **fields})

    def emit(self, name: str, /, **fields: Any) -> None:
        # Checked first: with a disabled debug level and no handler (the usual case in production) an event
        # costs nothing on hot paths, not even merging the bound fields.
        logged = _stdlib_logger.isEnabledFor(logging.DEBUG)
        if not logged and self._handler is None:
            return
        for key, value in self._bound.items():  # into the call's own dict: no copy per event
            fields.setdefault(key, value)
        if logged:
            _logger.debug(name, **fields)
        if self._handler is None:
            return
        event = Event(name=name, at=self._now(), fields=MappingProxyType(fields))
        try:
            self._handler(event)
        except Exception as exc:
            _logger.warning("events.handler_failed", event=name, error_type=type(exc).__name__)
