"""`RedisToolCache`: the tool catalogue the replicas of a chat backend share, on Redis.

Each replica keeps a copy of what it read in process memory: a cache hit is a dict lookup, with no call to
Redis. Redis is read on a miss and written after a listing; a change anyone makes is published on one
channel, and every replica drops its copy as it hears it. A replica that may have missed a message (its
subscription broke, or Redis stopped answering) drops every copy once Redis answers again.

Redis trouble never fails a turn: every call is bounded by ``call_timeout`` on the injected clock, a failed
call reads as a miss (or as "list it here"), and Redis is left alone for ``outage_pause`` before it is
asked again, so a replica in an outage discovers on its own at the cost of one timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Final, TypeVar

import anyio
import redis.asyncio
import redis.exceptions

from chat_mcp_primer._tasks import BackgroundTasks
from chat_mcp_primer.clock import Clock, SystemClock, run_with_timeout, tags
from chat_mcp_primer.events import EventName, Events
from chat_mcp_primer.redis import _codec as codec
from chat_mcp_primer.redis import _scripts as scripts
from chat_mcp_primer.redis._listing import ListingTurn, Waiter
from chat_mcp_primer.redis._settings import RedisCacheSettings
from chat_mcp_primer.workspace_mcp import CacheKey, CacheNews, ListedElsewhere, NewsKind, RemoteTool

T = TypeVar("T")

# What a call to Redis that failed, timed out or was not made (an outage) gives instead of its answer.
UNAVAILABLE: Final = object()
# The failures of a call to Redis that mean "not now": the replica goes on without it.
_REDIS_TROUBLE = (redis.exceptions.RedisError, OSError, TimeoutError)
# Generations are random and 62 bits wide: one read before a flush or a restart never matches a later one.
_GENERATION_BITS = 62


class RedisCacheError(Exception):
    """`RedisToolCache` used where it cannot run: outside its ``async with`` block, or under trio."""


def _fresh_generation() -> int:
    return secrets.randbits(_GENERATION_BITS) + 1


class RedisToolCache:
    """A `SharedToolCache` on Redis, for the replicas of one chat backend (one per process).

    ``client`` is the user's own ``redis.asyncio.Redis`` (its URL, pool, TLS and credentials stay theirs);
    ``scope`` names what the replicas share and nothing else may: one Coder deployment seen with one
    credential. Replicas with the same scope (and ``settings.key_prefix``) share their catalogues; a
    workspace listed with another credential may offer other tools, so give it another scope.

    Use it as ``async with RedisToolCache(...) as cache`` around the `ChatRuntime` it is given to: the block
    holds its subscription to the change channel. It runs on asyncio only (redis's asyncio client does not
    run under trio): entered under trio it raises `RedisCacheError`.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        scope: str,
        clock: Clock | None = None,
        settings: RedisCacheSettings | None = None,
    ) -> None:
        if not scope or any(c.isspace() for c in scope):
            raise ValueError("RedisToolCache scope must be a non-empty word (one per deployment and credential)")
        self._client = client
        self._clock: Clock = clock if clock is not None else SystemClock()
        self.settings = settings if settings is not None else RedisCacheSettings()
        self._prefix = f"{self.settings.key_prefix}:{scope}"
        self.channel = f"{self._prefix}:news"
        self._origin = secrets.token_hex(8)  # this replica, on the channel: its own messages are not news
        self._tokens = itertools.count(1)
        self._ttl_ms = int(self.settings.catalogue_ttl * 1000)
        self._lease_ms = int(self.settings.lease_ttl * 1000)
        self._copies: dict[CacheKey, tuple[RemoteTool, ...]] = {}
        self._generations: dict[CacheKey, int] = {}
        self._drops = 0  # copies dropped so far: a read that overlapped a drop keeps no copy
        self._listeners: list[tuple[Events, Callable[[CacheNews], None]]] = []
        self._waiters: dict[CacheKey, set[Waiter]] = {}
        self._outage_until: float | None = None
        self._call_slots = anyio.CapacityLimiter(self.settings.max_concurrent_calls)
        self._in_outage = False
        self._background: BackgroundTasks | None = None
        self._scripts = {
            name: client.register_script(source)
            for name, source in (
                ("generation", scripts.GENERATION),
                ("put", scripts.PUT),
                ("invalidate", scripts.INVALIDATE),
                ("drop_workspace", scripts.DROP_WORKSPACE),
                ("renew", scripts.RENEW),
                ("release", scripts.RELEASE),
            )
        }
        self.calls = 0  # calls made to Redis: tests and benchmarks count them

    async def __aenter__(self) -> RedisToolCache:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise RedisCacheError(
                "RedisToolCache runs on asyncio only: redis's asyncio client does not run under trio "
                "(use MemoryToolCache there)"
            ) from None
        background = BackgroundTasks()
        await background.__aenter__()
        try:
            from chat_mcp_primer.redis._feed import ChangeFeed  # the feed reads this module's cache

            subscribed = anyio.Event()
            background.start_soon(ChangeFeed(self, self._client, self._clock).run, subscribed)
            # Messages published before the subscription would be missed: wait for it, a call's time at
            # most. Redis not answering now is no failure: the feed keeps trying, and discovery goes on.
            with contextlib.suppress(TimeoutError):
                await run_with_timeout(self._clock, self.settings.call_timeout, subscribed.wait, *tags.CACHE_CALL)
        except BaseException as exc:
            await background.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        self._background = background
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        background, self._background = self._background, None
        if background is not None:
            await background.__aexit__(exc_type, exc, traceback)

    # -- the process's copies -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._copies)

    def _drop(self, keys: Iterable[CacheKey]) -> None:
        for key in list(keys):
            self._copies.pop(key, None)
            self._generations.pop(key, None)
        self._drops += 1

    def _keys_of(self, workspace_id: str, keep_agent_id: str | None = None, *, every_agent: bool) -> list[CacheKey]:
        known = itertools.chain(self._copies, self._generations)
        return [
            key
            for key in set(known)
            if key.workspace_id == workspace_id and (every_agent or key.agent_id != keep_agent_id)
        ]

    def drop_every_copy(self) -> None:
        """Forget what this process read: messages may have been missed (called when Redis answers again)."""
        self._drop(set(itertools.chain(self._copies, self._generations)))

    # -- calls to Redis, bounded ----------------------------------------------------------------------

    def _redis_key(self, kind: str, member: str) -> str:
        return f"{self._prefix}:{kind}:{member}"

    def _workspace_key(self, workspace_id: str) -> str:
        return self._redis_key("ws", codec.encode_workspace(workspace_id))

    async def call(self, operation: str, call: Callable[[], Awaitable[T]]) -> T | object:
        """``call``'s answer, or `UNAVAILABLE` when it failed, timed out, or Redis is left alone for now."""
        if self._outage_until is not None and self._clock.now() < self._outage_until:
            return UNAVAILABLE
        self.calls += 1
        try:
            answer = await run_with_timeout(
                self._clock, self.settings.call_timeout, lambda: self._in_a_slot(call), *tags.CACHE_CALL
            )
        except _REDIS_TROUBLE as exc:
            self.outage(operation, exc)
            return UNAVAILABLE
        if self._in_outage:
            self.answering_again()
        return answer

    async def _in_a_slot(self, call: Callable[[], Awaitable[T]]) -> T:
        async with self._call_slots:
            return await call()

    def outage(self, operation: str, exc: BaseException, *, pause: bool = True) -> None:
        """A call failed: told once per outage. ``pause``: leave Redis alone for ``outage_pause`` (not for
        a lost subscription alone: the connection that carried it may be all that broke)."""
        if pause:
            self._outage_until = self._clock.now() + self.settings.outage_pause
        if not self._in_outage:
            self._in_outage = True
            reason = str(exc) or type(exc).__name__
            for events in self._told():
                events.emit(EventName.CACHE_UNAVAILABLE, operation=operation, reason=reason[: codec.MAX_REASON_CHARS])

    def answering_again(self) -> None:
        """Redis answers after an outage or a lost subscription: whatever it said meanwhile was missed."""
        self._outage_until = None
        self._in_outage = False
        self.drop_every_copy()
        for events in self._told():
            events.emit(EventName.CACHE_RECONNECTED)

    def _told(self) -> list[Events]:
        """The events of every runtime the cache is attached to."""
        return [events for events, _ in self._listeners]

    # -- ToolCache ------------------------------------------------------------------------------------

    async def get(self, key: CacheKey) -> tuple[RemoteTool, ...] | None:
        copy = self._copies.get(key)
        if copy is not None:
            return copy
        drops = self._drops
        raw = await self.call("get", lambda: self._client.get(self._redis_key("tools", codec.encode_key(key))))
        if not isinstance(raw, bytes):
            return None  # no entry, or Redis is not answering
        tools = codec.decode_catalogue(raw, self.settings.max_catalogue_bytes)
        if tools is not None and drops == self._drops:  # nobody dropped copies while we read
            self._copies[key] = tools
        return tools

    async def generation(self, key: CacheKey) -> int:
        member = codec.encode_key(key)
        fresh = _fresh_generation()
        keys = [self._redis_key("gen", member), self._workspace_key(key.workspace_id)]
        answer = await self.call("generation", lambda: self._scripts["generation"](keys, [fresh, self._ttl_ms, member]))
        try:
            generation = int(answer) if isinstance(answer, bytes | int) else fresh
        except ValueError:
            generation = fresh  # not ours: this listing is then not cached in Redis
        self._generations[key] = generation
        return generation

    async def put(self, key: CacheKey, tools: tuple[RemoteTool, ...], generation: int) -> bool:
        if not tools or self._generations.get(key, 0) != generation:
            return False  # empty, or dropped here since the listing began
        catalogue = codec.encode_catalogue(tools)
        if len(catalogue) <= self.settings.max_catalogue_bytes:
            member = codec.encode_key(key)
            keys = [
                self._redis_key("gen", member),
                self._redis_key("tools", member),
                self._workspace_key(key.workspace_id),
            ]
            stored = await self.call(
                "put", lambda: self._scripts["put"](keys, [generation, catalogue, self._ttl_ms, member])
            )
            if stored is not UNAVAILABLE and not stored:
                return False  # another replica invalidated it while we listed
        if self._generations.get(key, 0) != generation:
            return False  # dropped here while we wrote
        self._copies[key] = tools
        return True

    async def invalidate(self, key: CacheKey) -> None:
        self._drop([key])
        member = codec.encode_key(key)
        message = codec.encode_news(
            self._origin, CacheNews(NewsKind.INVALIDATED, key.workspace_id, key.agent_id, key.server)
        )
        keys = [self._redis_key("gen", member), self._redis_key("tools", member)]
        await self.call("invalidate", lambda: self._scripts["invalidate"](keys, [self.channel, message]))

    async def invalidate_workspace(self, workspace_id: str) -> None:
        self._drop(self._keys_of(workspace_id, every_agent=True))
        await self._drop_workspace(CacheNews(NewsKind.WORKSPACE_INVALIDATED, workspace_id), every_agent=True)

    async def forget_agents(self, workspace_id: str, keep_agent_id: str | None) -> None:
        self._drop(self._keys_of(workspace_id, keep_agent_id, every_agent=False))
        news = CacheNews(NewsKind.AGENTS_FORGOTTEN, workspace_id, keep_agent_id)
        await self._drop_workspace(news, every_agent=keep_agent_id is None)

    async def _drop_workspace(self, news: CacheNews, *, every_agent: bool) -> None:
        message = codec.encode_news(self._origin, news)
        arguments: list[str | bytes] = [
            self._prefix,
            self.channel,
            message,
            news.agent_id or "",
            "1" if every_agent else "0",
        ]
        keys = [self._workspace_key(news.workspace_id)]
        await self.call("drop_workspace", lambda: self._scripts["drop_workspace"](keys, arguments))

    # -- SharedToolCache ------------------------------------------------------------------------------

    def attach(self, events: Events, on_news: Callable[[CacheNews], None]) -> Callable[[], None]:
        listener = (events, on_news)
        self._listeners.append(listener)

        def detach() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return detach

    @asynccontextmanager
    async def listing(self, key: CacheKey, within: float) -> AsyncIterator[ListingTurn]:
        if self._background is None:
            raise RedisCacheError("RedisToolCache is used outside its `async with` block")
        turn = ListingTurn()
        lease_key = self._redis_key("lease", codec.encode_key(key))
        token = await self._lease_or_wait(key, lease_key, within, turn)
        if token is None:
            yield turn  # answered by another replica, or Redis is not answering: list here, alone
            return
        listed = anyio.Event()
        async with BackgroundTasks() as renewals:
            renewals.start_soon(self._renew, lease_key, token, listed)
            try:
                yield turn
            finally:
                listed.set()
                outcome, reason = turn.outcome()
                with anyio.CancelScope(shield=True):  # the others must hear how it went, even if we were cancelled
                    await self._release(key, lease_key, token, outcome, reason, final=turn.final)

    async def _lease_or_wait(self, key: CacheKey, lease_key: str, within: float, turn: ListingTurn) -> str | None:
        """The lease's token when this replica is to list ``key``; None when another replica's listing
        answered (``turn.elsewhere``) or Redis is not answering (list without a lease)."""
        token = f"{self._origin}:{next(self._tokens)}"
        deadline = self._clock.now() + within
        waiter = Waiter()
        self._waiters.setdefault(key, set()).add(waiter)  # before the first look: no message slips by
        try:
            saw_a_holder = False
            while True:
                taken = await self.call("lease", lambda: self._client.set(lease_key, token, nx=True, px=self._lease_ms))
                if taken is UNAVAILABLE:
                    return None
                if taken:
                    if saw_a_holder and not waiter.heard:
                        # The holder let go while we were asking Redis: what it said may still be on its
                        # way (or it died, and says nothing).
                        with contextlib.suppress(TimeoutError):
                            wait = self.settings.lease_poll_interval
                            await run_with_timeout(self._clock, wait, waiter.ended.wait, *tags.CACHE_LEASE)
                    # A holder may have finished and let go between our miss (or our last look) and our
                    # lease: its listing is stored, or it failed and said so. Either answers this one.
                    tools = await self.get(key)
                    failed = self._failure_heard(waiter)
                    if tools or failed is not None:
                        reason = failed.failure if failed is not None and not tools else None
                        final = failed is not None and failed.final
                        outcome = codec.LISTED if tools else codec.FAILED
                        await self._release(key, lease_key, token, outcome, reason, final=final)
                        turn.elsewhere = ListedElsewhere(tools) if tools else failed
                        return None
                    if saw_a_holder and not waiter.heard:
                        # The holder went silent and its lease ran out: it died, or lost Redis.
                        for events in self._told():
                            events.emit(EventName.CACHE_LEASE_TAKEN_OVER, server=key.server, agent_id=key.agent_id)
                    return token
                saw_a_holder = True
                elsewhere = await self._wait_for_holder(key, waiter, deadline, within)
                if elsewhere is not None:
                    turn.elsewhere = elsewhere
                    return None
        finally:
            waiters = self._waiters.get(key)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[key]

    async def _wait_for_holder(
        self, key: CacheKey, waiter: Waiter, deadline: float, within: float
    ) -> ListedElsewhere | None:
        """Wait for another replica's listing of ``key``: what it gave, or None to try for the lease again."""
        remaining = deadline - self._clock.now()
        if remaining <= 0:
            return ListedElsewhere(failure=f"another replica's listing did not end within {within:g} s")
        if not waiter.ended.is_set():
            wait = min(self.settings.lease_poll_interval, remaining)
            # Nothing heard by then: a lost message, or a holder that died; Redis itself is looked at.
            with contextlib.suppress(TimeoutError):
                await run_with_timeout(self._clock, wait, waiter.ended.wait, *tags.CACHE_LEASE)
        failed = self._failure_heard(waiter)
        if failed is not None:
            return failed
        outcome, _, _ = waiter.take()
        if outcome == codec.NOT_CACHED:
            return None
        tools = await self.get(key)
        return ListedElsewhere(tools) if tools else None

    @staticmethod
    def _failure_heard(waiter: Waiter) -> ListedElsewhere | None:
        """The failure of another replica's listing, heard since the waiter last looked (and spent)."""
        if waiter.outcome != codec.FAILED:
            return None
        _, reason, final = waiter.take()
        return ListedElsewhere(failure=reason or "another replica's listing failed", final=final)

    async def _renew(self, lease_key: str, token: str, listed: anyio.Event) -> None:
        every = self.settings.lease_ttl / 3
        while True:
            try:
                await run_with_timeout(self._clock, every, listed.wait, *tags.CACHE_LEASE)
                return
            except TimeoutError:
                await self.call("renew", lambda: self._scripts["renew"]([lease_key], [token, self._lease_ms]))

    async def _release(
        self, key: CacheKey, lease_key: str, token: str, outcome: str, reason: str | None = None, *, final: bool = False
    ) -> None:
        message = codec.encode_listing_end(self._origin, key, outcome, reason, final=final)
        await self.call("release", lambda: self._scripts["release"]([lease_key], [token, self.channel, message]))

    # -- what the change feed hears -------------------------------------------------------------------

    def heard(self, raw: object) -> None:
        """A message on the channel: a listing ended, or another replica changed the cache."""
        message = codec.decode_message(raw, self.settings.max_message_bytes)
        if message is None or message["o"] == self._origin:
            return
        if message["k"] == codec.LISTING_ENDED:
            self._listing_ended(message)
            return
        news = codec.news_of(message)
        if news is None:
            return
        if news.kind is NewsKind.INVALIDATED and news.agent_id is not None and news.server is not None:
            self._drop([CacheKey(news.workspace_id, news.agent_id, news.server)])
        elif news.kind is NewsKind.WORKSPACE_INVALIDATED:
            self._drop(self._keys_of(news.workspace_id, every_agent=True))
        elif news.kind is NewsKind.AGENTS_FORGOTTEN:
            self._drop(self._keys_of(news.workspace_id, news.agent_id, every_agent=news.agent_id is None))
        self._tell(news)

    def _listing_ended(self, message: dict[str, Any]) -> None:
        key = codec.decode_key(message.get("key"))
        outcome = message.get("outcome")
        if key is None or outcome not in (codec.LISTED, codec.FAILED, codec.NOT_CACHED):
            return
        reason = message.get("reason")
        for waiter in self._waiters.get(key, ()):
            waiter.hear(str(outcome), reason if isinstance(reason, str) else None, message.get("final") is True)
        if outcome == codec.LISTED:
            self._tell(CacheNews(NewsKind.LISTED, key.workspace_id, key.agent_id, key.server))

    def _tell(self, news: CacheNews) -> None:
        for _, on_news in list(self._listeners):
            on_news(news)
