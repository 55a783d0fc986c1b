"""`RedisCacheSettings`: every bound of the shared tool cache, each with why it has its default."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RedisCacheSettings:
    """How `RedisToolCache` talks to Redis, and how long it trusts what it hears there."""

    # Where the cache's keys and channel live; several deployments may share one Redis under other prefixes.
    key_prefix: str = "chat-mcp-primer"
    # Every call to Redis, on the injected clock. Redis answers in about a millisecond, but a replica whose
    # event loop is busy (a hundred chats starting at once) may take most of a second to read the answer,
    # and a call given up then reads as an outage: the replica lists alone. Past this, a slow or paused
    # Redis costs a turn this much, once per outage (`outage_pause`).
    call_timeout: float = 1.0
    # After a failed call, Redis is left alone for this long: the replica's own discovery goes on without
    # paying ``call_timeout`` on every step, and the change feed keeps trying to reconnect meanwhile.
    outage_pause: float = 2.0
    # How long a catalogue stays in Redis unread. A workspace's tools outlive a turn by far, but a stopped
    # or forgotten workspace must not keep its entries forever; the next listing writes them again.
    catalogue_ttl: float = 3600.0
    # A listing's lease: held by the replica that lists, renewed every third of it while the listing runs,
    # so a replica that dies mid-listing holds the others back for at most this long.
    lease_ttl: float = 5.0
    # How often a replica waiting for another's listing looks at Redis when it has heard nothing (a lost
    # message, a holder that died): the wait is woken at once by the listing's message otherwise.
    lease_poll_interval: float = 0.5
    # Calls to Redis in flight at once from one replica; more wait their turn, within ``call_timeout``. Under
    # the 100 connections of redis's default asyncio pool, which fails a call past them ("Too many
    # connections") while Redis is fine, with room for the change feed's subscription and the user's own
    # calls on the same client: a replica with a hundred chats starting at once would otherwise see an outage.
    max_concurrent_calls: int = 64
    # The largest catalogue written to Redis or read back from it (checked before it is parsed). A
    # thousand tools with schemas of a few KiB take a few MiB; a larger catalogue stays in the process
    # that listed it, and the other replicas list it themselves.
    max_catalogue_bytes: int = 16 * 1024 * 1024
    # The largest message read from the change channel; ours are under a kilobyte.
    max_message_bytes: int = 64 * 1024
    # The change feed's pause before it subscribes again after losing its connection, doubling up to
    # ``outage_pause``: a restarted Redis is back within a second or two.
    reconnect_pause: float = 0.1

    def __post_init__(self) -> None:
        for name in ("call_timeout", "outage_pause", "catalogue_ttl", "lease_ttl", "lease_poll_interval"):
            if not getattr(self, name) > 0:
                raise ValueError(f"RedisCacheSettings.{name} must be positive")
        if self.reconnect_pause <= 0 or self.reconnect_pause > self.outage_pause:
            raise ValueError("RedisCacheSettings.reconnect_pause must be positive and at most outage_pause")
        if self.max_concurrent_calls < 1:
            raise ValueError("RedisCacheSettings.max_concurrent_calls must be at least 1")
        if self.max_catalogue_bytes < 1 or self.max_message_bytes < 1:
            raise ValueError("RedisCacheSettings byte limits must be at least 1")
        if not self.key_prefix or any(c.isspace() for c in self.key_prefix):
            raise ValueError("RedisCacheSettings.key_prefix must be a non-empty word")
