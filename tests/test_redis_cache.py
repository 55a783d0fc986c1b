"""`RedisToolCache` against a real redis-server on loopback: replicas (here, hubs of one process, each on its
own cache and connection) share one listing per server, a hit never leaves the process, a change heard by
one replica reaches the others, and Redis trouble never fails a turn."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
import redis.asyncio
from tests._turns import new_hub, shared_turn
from tests.test_shared_discovery import serve_plugins

from chat_mcp_primer import Tool, WorkspaceBinding
from chat_mcp_primer.clock import SystemClock
from chat_mcp_primer.redis import RedisCacheError, RedisCacheSettings, RedisToolCache
from chat_mcp_primer.redis import _codec as codec
from chat_mcp_primer.testing import EventRecorder, InMemoryWorkspaces, RedisServer, WorkspaceMCPServer, echo_tools
from chat_mcp_primer.workspace_mcp import CacheKey, RemoteTool
from chat_mcp_primer.workspace_mcp._hub import WorkspaceMcpHub

READY = WorkspaceBinding("ws-1", agent_id="agent-1")
KEY = CacheKey("ws-1", "agent-1", "code")
CHATS_PER_REPLICA = 20
# Guards against hangs in real time; never an assertion about speed.
GUARD_S = 20
# Quick to notice trouble, so the outage tests stay short in real time.
QUICK = RedisCacheSettings(call_timeout=0.2, outage_pause=0.3, lease_ttl=0.6, lease_poll_interval=0.05)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # redis's asyncio client: the trio answer has a test of its own


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    connection = redis.asyncio.Redis.from_url(redis_server.url)
    await connection.flushall()
    yield connection
    await connection.aclose()


@contextlib.asynccontextmanager
async def replica(
    url: str, recorder: EventRecorder | None = None, settings: RedisCacheSettings | None = None, **hub_settings: Any
) -> AsyncIterator[tuple[RedisToolCache, WorkspaceMcpHub]]:
    """One replica: its own Redis connection, cache and hub, on the real clock."""
    clock = SystemClock()
    connection = redis.asyncio.Redis.from_url(url)
    try:
        async with (
            RedisToolCache(connection, scope="test", clock=clock, settings=settings) as cache,
            new_hub(cache, clock, recorder, **hub_settings) as hub,
        ):
            yield cache, hub
    finally:
        await connection.aclose()


async def offered(hub: WorkspaceMcpHub, workspaces: InMemoryWorkspaces, chat_id: str) -> list[str]:
    async with shared_turn(hub, workspaces, chat_id, READY) as turn:
        with anyio.fail_after(GUARD_S):
            return [tool.spec.name for tool in await turn.prepare_tools([]) or ()]


async def offered_on_both(
    first: WorkspaceMcpHub, second: WorkspaceMcpHub, workspaces: InMemoryWorkspaces
) -> list[list[str]]:
    """What each of ``CHATS_PER_REPLICA`` chats per replica, all starting at once, was offered."""
    seen: list[list[str]] = []

    async def chat(hub: WorkspaceMcpHub, name: str) -> None:
        seen.append(await offered(hub, workspaces, name))

    async with anyio.create_task_group() as group:
        for number in range(CHATS_PER_REPLICA):
            group.start_soon(chat, first, f"a-{number}")
            group.start_soon(chat, second, f"b-{number}")
    return seen


pytestmark = pytest.mark.anyio


async def test_replicas_make_one_listing_for_all_their_chats(
    redis_server: RedisServer, client: redis.asyncio.Redis, workspaces: InMemoryWorkspaces
) -> None:
    with WorkspaceMCPServer(echo_tools("grep", "sed"), name="code") as server:
        workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
        async with replica(redis_server.url) as (_, first), replica(redis_server.url) as (_, second):
            seen = await offered_on_both(first, second, workspaces)
    assert seen == [["code__grep", "code__sed"]] * (2 * CHATS_PER_REPLICA)
    assert server.list_calls == 1


async def test_replicas_waiting_for_a_failing_listing_take_its_failure_instead_of_listing_again(
    redis_server: RedisServer, client: redis.asyncio.Redis, workspaces: InMemoryWorkspaces
) -> None:
    recorders = [EventRecorder(), EventRecorder()]
    # The listing hangs until its bound: every chat of both replicas asks while it is in flight.
    with WorkspaceMCPServer(echo_tools("grep"), name="code", hang_listing=True) as server:
        workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
        async with (
            replica(redis_server.url, recorders[0], discovery_timeout=2.0) as (_, first),
            replica(redis_server.url, recorders[1], discovery_timeout=2.0) as (_, second),
        ):
            seen = await offered_on_both(first, second, workspaces)
    assert seen == [[]] * (2 * CHATS_PER_REPLICA)
    assert server.list_calls == 1
    failed = [event for recorder in recorders for event in recorder.named("discovery.server_failed")]
    elsewhere = [event for recorder in recorders for event in recorder.named("discovery.listed_elsewhere")]
    # One replica listed; the other took its failure.
    assert len(failed) == 1
    assert len(elsewhere) == 1
    assert elsewhere[0].fields["reason"] == failed[0].fields["reason"]


async def test_a_chat_moving_to_another_replica_makes_no_listing_and_a_hit_makes_no_redis_call(
    redis_server: RedisServer, client: redis.asyncio.Redis, workspaces: InMemoryWorkspaces
) -> None:
    with WorkspaceMCPServer(echo_tools("grep"), name="code") as server:
        workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
        async with replica(redis_server.url) as (_, first), replica(redis_server.url) as (cache, second):
            assert await offered(first, workspaces, "chat-1") == ["code__grep"]
            assert await offered(second, workspaces, "chat-1") == ["code__grep"]  # the next turn, elsewhere
            calls = cache.calls
            assert await offered(second, workspaces, "chat-1") == ["code__grep"]  # and again: a local hit
            assert cache.calls == calls
    assert server.list_calls == 1


async def test_list_changed_heard_by_one_replica_reaches_the_next_step_of_another(
    redis_server: RedisServer, client: redis.asyncio.Redis, workspaces: InMemoryWorkspaces
) -> None:
    heard = EventRecorder()
    with serve_plugins() as endpoint:
        workspaces.set_agent("ws-1", "agent-1", (endpoint,))
        async with (
            replica(redis_server.url) as (_, first),
            replica(redis_server.url, heard) as (_, second),
            shared_turn(second, workspaces, "chat-b", READY) as later,
        ):
            with anyio.fail_after(GUARD_S):
                before = [tool.spec.name for tool in await later.prepare_tools([]) or ()]
            async with shared_turn(first, workspaces, "chat-a", READY) as turn:
                with anyio.fail_after(GUARD_S):
                    tools: list[Tool] = list(await turn.prepare_tools([]) or ())
                    enable = next(tool for tool in tools if tool.spec.name == "plugins__enable_extra")
                    assert (await enable.call({})).text == "enabled"
                    await heard.wait_for("cache.news")
                    after = [tool.spec.name for tool in await later.prepare_tools([]) or ()]
    assert "plugins__extra" not in before
    assert "plugins__extra" in after
    assert heard.named("cache.news")[0].fields["kind"] == "invalidated"


async def test_a_listing_started_before_another_replica_invalidated_is_never_written_back(
    redis_server: RedisServer, client: redis.asyncio.Redis
) -> None:
    tools = (RemoteTool("code", "grep", "Search.", {"type": "object"}),)
    async with replica(redis_server.url) as (first, _), replica(redis_server.url) as (second, _):
        generation = await first.generation(KEY)
        await second.invalidate(KEY)
        assert not await first.put(KEY, tools, generation)
        assert await second.get(KEY) is None
        assert await first.put(KEY, tools, await first.generation(KEY))
        assert await second.get(KEY) == tools
        assert not await first.put(KEY, (), await first.generation(KEY))  # never an empty listing


async def test_forgetting_a_workspaces_old_agents_drops_them_on_every_replica(
    redis_server: RedisServer, client: redis.asyncio.Redis
) -> None:
    old, new = CacheKey("ws-1", "agent-old", "code"), CacheKey("ws-1", "agent-new", "code")
    tools = (RemoteTool("code", "grep", "Search.", {"type": "object"}),)
    heard = EventRecorder()
    async with replica(redis_server.url) as (first, _), replica(redis_server.url, heard) as (second, _):
        for key in (old, new):
            assert await first.put(key, tools, await first.generation(key))
            assert await second.get(key) == tools  # the second replica holds a copy of each
        await first.forget_agents("ws-1", "agent-new")
        with anyio.fail_after(GUARD_S):
            await heard.wait_for("cache.news")
        assert await second.get(old) is None
        assert await second.get(new) == tools


async def test_a_replica_whose_lease_holder_died_takes_the_listing_over(
    redis_server: RedisServer, client: redis.asyncio.Redis, workspaces: InMemoryWorkspaces
) -> None:
    recorder = EventRecorder()
    with WorkspaceMCPServer(echo_tools("grep"), name="code") as server:
        workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
        async with replica(redis_server.url, recorder, QUICK) as (_, hub):
            # A replica took the lease and died: nobody renews it, nobody tells how its listing ended.
            lease = f"chat-mcp-primer:test:lease:{codec.encode_key(KEY)}"
            assert await client.set(lease, "dead-replica:1", px=int(QUICK.lease_ttl * 1000), nx=True)
            assert await offered(hub, workspaces, "chat-1") == ["code__grep"]
    assert server.list_calls == 1
    assert recorder.named("cache.lease_taken_over")


async def test_redis_stopped_mid_use_fails_no_turn_and_the_cache_reconnects() -> None:
    recorder = EventRecorder()
    workspaces = InMemoryWorkspaces()
    with RedisServer() as own, WorkspaceMCPServer(echo_tools("grep"), name="code") as server:
        workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
        async with replica(own.url, recorder, QUICK) as (cache, hub):
            assert await offered(hub, workspaces, "chat-1") == ["code__grep"]
            own.stop()
            await cache.invalidate(KEY)  # fails: the copy is dropped here all the same
            assert await offered(hub, workspaces, "chat-2") == ["code__grep"]  # listed here, alone
            assert recorder.named("cache.unavailable")
            own.start()
            with anyio.fail_after(GUARD_S):
                await recorder.wait_for("cache.reconnected")
            assert await offered(hub, workspaces, "chat-3") == ["code__grep"]
    # Before the outage; during it, alone; after it, since the restarted Redis is empty and this replica
    # dropped its copies (what was said while it could not hear is lost).
    assert server.list_calls == 3


async def test_a_paused_redis_costs_a_bounded_call_not_a_hung_turn() -> None:
    recorder = EventRecorder()
    workspaces = InMemoryWorkspaces()
    with RedisServer() as own, WorkspaceMCPServer(echo_tools("grep"), name="code") as server:
        workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
        async with replica(own.url, recorder, QUICK) as (_, hub):
            own.pause()
            try:
                assert await offered(hub, workspaces, "chat-1") == ["code__grep"]
            finally:
                own.resume()
    # One call timed out (the turn's first); the rest of the turn left Redis alone and listed here.
    assert len(recorder.named("cache.unavailable")) == 1
    assert server.list_calls == 1


async def test_a_flushed_redis_is_listed_again_and_nothing_partial_is_kept(
    redis_server: RedisServer, client: redis.asyncio.Redis
) -> None:
    tools = (RemoteTool("code", "grep", "Search.", {"type": "object"}),)
    async with replica(redis_server.url) as (first, _), replica(redis_server.url) as (second, _):
        generation = await first.generation(KEY)
        await client.flushall()
        assert not await first.put(KEY, tools, generation)  # began before the flush: not written
        assert await second.get(KEY) is None


async def test_what_is_not_a_catalogue_in_redis_reads_as_no_entry(
    redis_server: RedisServer, client: redis.asyncio.Redis
) -> None:
    small = RedisCacheSettings(max_catalogue_bytes=64)
    async with replica(redis_server.url, settings=small) as (cache, _):
        stored = f"chat-mcp-primer:test:tools:{codec.encode_key(KEY)}"
        for junk in (b"not json", b"[1, 2]", b"[]", b'[["code", "grep", "d", {}, null]]' + b" " * 64):
            await client.set(stored, junk)
            assert await cache.get(KEY) is None


@pytest.mark.filterwarnings("ignore::pytest.PytestWarning")  # a plain test: no event loop of pytest's around it
def test_under_trio_the_cache_says_it_needs_asyncio(redis_server: RedisServer) -> None:
    async def enter() -> None:
        async with RedisToolCache(redis.asyncio.Redis.from_url(redis_server.url), scope="test"):
            pass

    with pytest.raises(RedisCacheError, match="asyncio only"):
        anyio.run(enter, backend="trio")


async def test_messages_on_the_channel_that_are_not_ours_change_nothing(
    redis_server: RedisServer, client: redis.asyncio.Redis
) -> None:
    tools = (RemoteTool("code", "grep", "Search.", {"type": "object"}),)
    heard = EventRecorder()
    async with replica(redis_server.url, heard) as (cache, _):
        assert await cache.put(KEY, tools, await cache.generation(KEY))
        channel = cache.channel
        for junk in (b"not json", b"[]", b'{"o": 1}', b'{"o": "x", "k": "nonsense", "w": "ws-1"}', b"x" * 70_000):
            await client.publish(channel, junk)
        # A real message after the junk: once it is heard, the junk before it was read (and ignored).
        await client.publish(channel, b'{"o": "other", "k": "invalidated", "w": "ws-2", "a": "agent-9", "s": "x"}')
        with anyio.fail_after(GUARD_S):
            await heard.wait_for("cache.news")
        assert len(heard.named("cache.news")) == 1
        assert await cache.get(KEY) == tools
        assert len(cache) == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"call_timeout": 0},
        {"lease_ttl": -1},
        {"reconnect_pause": 5.0},
        {"max_catalogue_bytes": 0},
        {"key_prefix": "has space"},
    ],
)
def test_settings_that_cannot_work_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="RedisCacheSettings"):
        RedisCacheSettings(**bad)


def test_a_scope_is_required_to_be_a_word(redis_server: RedisServer) -> None:
    with pytest.raises(ValueError, match="scope"):
        RedisToolCache(redis.asyncio.Redis.from_url(redis_server.url), scope="")
