from __future__ import annotations

import itertools
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from chat_mcp_primer.events import Events
from chat_mcp_primer.workspace_mcp._listing import RemoteTool


@dataclass(frozen=True, slots=True)
class CacheKey:
    """One MCP server of one agent of one workspace: the unit a listing is cached for."""

    workspace_id: str
    agent_id: str
    server: str


class ToolCache(Protocol):
    """Where complete, non-empty tool listings are kept between attempts, steps, turns and chats.

    Every key carries a generation. A fetch reads the generation before it starts and hands it to
    `put`; an invalidation in between bumps it, so the stale fetch is refused instead of written back.
    """

    async def get(self, key: CacheKey) -> tuple[RemoteTool, ...] | None: ...

    async def generation(self, key: CacheKey) -> int: ...

    async def put(self, key: CacheKey, tools: tuple[RemoteTool, ...], generation: int) -> bool:
        """Store ``tools``; False (nothing stored) when empty or when ``generation`` is no longer current."""
        ...

    async def invalidate(self, key: CacheKey) -> None:
        """Drop the entry and bump its generation (a rebuild, an update, ``tools/list_changed``)."""
        ...

    async def invalidate_workspace(self, workspace_id: str) -> None:
        """Invalidate every key of a workspace (its agent changed, or it was deleted)."""
        ...

    async def forget_agents(self, workspace_id: str, keep_agent_id: str | None) -> None:
        """Drop every entry of the workspace's agents but ``keep_agent_id`` (all of them for None), with
        its generation: a rebuild gives the workspace a new agent, and the old one is never listed again.
        A fetch for a forgotten key that is still in flight is refused when it tries to `put`."""
        ...


class NewsKind(StrEnum):
    """What another process sharing the cache did to it."""

    LISTED = "listed"  # it listed a server and cached its tools
    INVALIDATED = "invalidated"  # a server's tools changed (``tools/list_changed``): its entry is gone
    WORKSPACE_INVALIDATED = "workspace_invalidated"  # every entry of the workspace is gone
    AGENTS_FORGOTTEN = "agents_forgotten"  # the workspace's agent is now ``agent_id``: the others' entries are gone


@dataclass(frozen=True, slots=True)
class CacheNews:
    """A change another process made to a shared cache, heard by this one after its own copy was dropped."""

    kind: NewsKind
    workspace_id: str
    agent_id: str | None = None  # the agent kept, for AGENTS_FORGOTTEN (None: none)
    server: str | None = None


@dataclass(frozen=True, slots=True)
class ListedElsewhere:
    """Another process's listing of a server, which this one waited for instead of listing it too."""

    tools: tuple[RemoteTool, ...] = ()  # empty when it failed
    failure: str | None = None
    final: bool = False  # a failure asking again in this turn cannot mend (the app proxy refused the token)


class SharedListing(Protocol):
    """One process's turn at listing a server for every process sharing the cache (`SharedToolCache.listing`)."""

    @property
    def elsewhere(self) -> ListedElsewhere | None:
        """What another process's listing gave, when it answered: then there is nothing to list here."""
        ...

    def finished(self, tools: tuple[RemoteTool, ...], failure: str | None, *, final: bool = False) -> None:
        """What this process's listing gave (cached first, when it was cached), told to the others."""
        ...


@runtime_checkable
class SharedToolCache(ToolCache, Protocol):
    """A `ToolCache` that several processes share (the replicas of a chat backend).

    It makes one listing of a server for all of them (`listing`), and tells each what the others changed
    (`attach`), so a ``tools/list_changed`` heard by one reaches the chats of every one.
    """

    def attach(self, events: Events, on_news: Callable[[CacheNews], None]) -> Callable[[], None]:
        """Tell ``on_news`` (inline, quick) what other processes change, and ``events`` how the sharing
        goes; returns the call that stops both."""
        ...

    def listing(self, key: CacheKey, within: float) -> AbstractAsyncContextManager[SharedListing]:
        """Enter before listing ``key``'s server: either another process's listing answers
        (``elsewhere``, waited for at most ``within`` seconds), or this process lists it and says what it
        found (``finished``) before leaving. Never raises for the sharing's own trouble: it lists here."""
        ...


class MemoryToolCache:
    """A `ToolCache` in process memory, shared by every chat of one `ChatRuntime`."""

    def __init__(self) -> None:
        self._entries: dict[CacheKey, tuple[RemoteTool, ...]] = {}
        self._generations: dict[CacheKey, int] = {}
        # Generations handed out for keys seen for the first time start above 0 and never repeat, so a
        # fetch that read one before its key was forgotten cannot match the 0 a fresh `put` assumes.
        self._issued = itertools.count(1)

    async def get(self, key: CacheKey) -> tuple[RemoteTool, ...] | None:
        return self._entries.get(key)

    async def generation(self, key: CacheKey) -> int:
        generation = self._generations.get(key)
        if generation is None:
            generation = self._generations[key] = next(self._issued)
        return generation

    async def put(self, key: CacheKey, tools: tuple[RemoteTool, ...], generation: int) -> bool:
        # setdefault: a key stored without its generation read first is still known to invalidate_workspace.
        if not tools or self._generations.setdefault(key, 0) != generation:
            return False
        self._entries[key] = tools
        return True

    async def invalidate(self, key: CacheKey) -> None:
        self._entries.pop(key, None)
        self._generations[key] = next(self._issued)

    async def invalidate_workspace(self, workspace_id: str) -> None:
        for key in [k for k in self._generations if k.workspace_id == workspace_id]:
            await self.invalidate(key)

    async def forget_agents(self, workspace_id: str, keep_agent_id: str | None) -> None:
        for key in [k for k in self._generations if k.workspace_id == workspace_id and k.agent_id != keep_agent_id]:
            self._entries.pop(key, None)
            del self._generations[key]

    def __len__(self) -> int:
        return len(self._entries)
