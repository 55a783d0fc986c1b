"""The change feed: one subscription per replica to the cache's channel, kept up for the cache's life."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import anyio
import redis.asyncio
import redis.exceptions

from chat_mcp_primer.clock import Clock, run_with_timeout, tags

if TYPE_CHECKING:
    from chat_mcp_primer.redis._cache import RedisToolCache

# The failures that end a subscription: the feed subscribes again.
_LOST = (OSError, TimeoutError, redis.exceptions.RedisError)


class ChangeFeed:
    """Hands every message on the channel to the cache, and subscribes again whenever the connection is
    lost (pausing ``reconnect_pause``, doubling up to ``outage_pause``). Whatever was published while it
    was not subscribed is missed, so the cache drops its copies when it is back."""

    def __init__(self, cache: RedisToolCache, client: redis.asyncio.Redis, clock: Clock) -> None:
        self._cache = cache
        self._client = client
        self._clock = clock

    async def run(self, subscribed: anyio.Event) -> None:
        settings = self._cache.settings
        pause = settings.reconnect_pause
        lost = False
        while True:
            try:
                async with self._subscription() as pubsub:
                    subscribed.set()
                    if lost:
                        self._cache.answering_again()
                    lost, pause = False, settings.reconnect_pause
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._cache.heard(message.get("data"))
                raise ConnectionError("the subscription ended")
            except _LOST as exc:
                lost = True
                self._cache.outage("subscribe", exc, pause=False)
            await self._clock.sleep(pause, *tags.CACHE_RECONNECT)
            pause = min(pause * 2, settings.outage_pause)

    @contextlib.asynccontextmanager
    async def _subscription(self) -> AsyncIterator[redis.asyncio.client.PubSub]:
        timeout = self._cache.settings.call_timeout
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        try:
            await run_with_timeout(
                self._clock, timeout, lambda: pubsub.subscribe(self._cache.channel), *tags.CACHE_CALL
            )
            yield pubsub
        finally:
            with anyio.CancelScope(shield=True), contextlib.suppress(*_LOST):
                await run_with_timeout(self._clock, timeout, pubsub.aclose, *tags.CACHE_CALL)
