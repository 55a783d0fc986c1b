from __future__ import annotations

import anyio

from chat_mcp_primer.events import Event


class EventRecorder:
    """An ``on_event`` handler that keeps every event, for assertions on the event vocabulary."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._recorded: anyio.Event | None = None

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        if self._recorded is not None:
            self._recorded.set()
            self._recorded = None

    async def wait_for(self, name: str) -> Event:
        """The first event called ``name``, waiting for it to be emitted if need be."""
        while not (found := self.named(name)):
            if self._recorded is None:
                self._recorded = anyio.Event()
            await self._recorded.wait()
        return found[0]

    def named(self, name: str) -> list[Event]:
        return [event for event in self.events if event.name == name]

    @property
    def names(self) -> list[str]:
        return [event.name for event in self.events]
