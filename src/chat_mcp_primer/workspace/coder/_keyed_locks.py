"""`KeyedLocks`: one lock per key (a chat, a workspace), kept only while someone holds or waits for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio


@dataclass(slots=True)
class _Entry:
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    # Holders and waiters together: the entry goes once the last of them leaves.
    users: int = 0


class KeyedLocks:
    """Serialises work per key, in the order callers ask for the key, without keeping a lock per key forever.

    A long-lived service sees an unbounded number of chats and workspaces; a key's lock is dropped as soon
    as nobody holds or waits for it, so the map holds only the keys in use (`len`). Cancellation while
    waiting leaves the map as if the caller had never come.
    """

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        """How many keys are held or waited for now."""
        return len(self._entries)

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold ``key``'s lock for the body of the ``async with``."""
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._entries[key]
