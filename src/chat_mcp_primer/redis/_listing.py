"""The two sides of a listing shared through Redis: the replica that lists (`ListingTurn`) and each one
that waits for it (`Waiter`)."""

from __future__ import annotations

import anyio

from chat_mcp_primer.redis import _codec as codec
from chat_mcp_primer.workspace_mcp import ListedElsewhere, RemoteTool


class ListingTurn:
    """A replica's turn at listing a server (`SharedListing`): answered by another replica's listing
    (``elsewhere``), or its own, told to the others when it ends."""

    __slots__ = ("_failure", "_listed", "elsewhere", "final")

    def __init__(self) -> None:
        self.elsewhere: ListedElsewhere | None = None
        self._listed: bool | None = None  # None: the listing never said how it went (it was cancelled)
        self._failure: str | None = None
        self.final = False

    def finished(self, tools: tuple[RemoteTool, ...], failure: str | None, *, final: bool = False) -> None:
        self._listed = bool(tools)
        self._failure = failure
        self.final = final

    def outcome(self) -> tuple[str, str | None]:
        """What the message that ends the lease says: listed (and cached: the others read it), failed
        (and why), or nothing the others can use (they list themselves)."""
        if self._failure is not None:
            return codec.FAILED, self._failure
        return (codec.LISTED if self._listed else codec.NOT_CACHED), None


class Waiter:
    """A replica waiting for another's listing of a server: woken by the message that ends its lease."""

    __slots__ = ("ended", "final", "heard", "outcome", "reason")

    def __init__(self) -> None:
        self.ended = anyio.Event()
        self.outcome: str | None = None
        self.reason: str | None = None
        self.final = False
        self.heard = False  # a listing's end was heard at least once while waiting

    def hear(self, outcome: str, reason: str | None, final: bool) -> None:
        self.outcome, self.reason, self.final = outcome, reason, final
        self.heard = True
        self.ended.set()

    def take(self) -> tuple[str | None, str | None, bool]:
        """What was heard since the last take (outcome, reason, final), spent: a later wait waits anew."""
        heard = (self.outcome, self.reason, self.final)
        if self.ended.is_set():
            self.ended = anyio.Event()
        self.outcome, self.reason, self.final = None, None, False
        return heard
