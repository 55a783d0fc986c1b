"""A tool catalogue shared by the replicas of a chat backend, on Redis (the ``[redis]`` extra).

``async with RedisToolCache(redis.asyncio.Redis.from_url(url), scope="prod-coder") as cache`` and give it
to each replica's ``ChatRuntime(cache=cache)``: one listing per server across every replica, a cache hit
that never leaves the process, and ``tools/list_changed`` heard by every replica's chats. asyncio only.
"""

from chat_mcp_primer._extras import is_missing_extra, missing_extra_message

try:
    from chat_mcp_primer.redis._cache import RedisCacheError, RedisToolCache
    from chat_mcp_primer.redis._settings import RedisCacheSettings
except ModuleNotFoundError as missing:  # the redis extra is not installed: say so in one line
    if not is_missing_extra(missing):
        raise
    raise ModuleNotFoundError(
        missing_extra_message("chat_mcp_primer.redis", "redis", missing), name=missing.name
    ) from None

__all__ = ["RedisCacheError", "RedisCacheSettings", "RedisToolCache"]
