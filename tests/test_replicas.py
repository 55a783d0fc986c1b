"""Replicas of a chat backend as processes of their own (`tests._replica_process`), sharing a real
redis-server on loopback, against real MCP servers over Streamable HTTP in this process: one listing per
(agent, server) among them all, a chat's next turn elsewhere lists nothing, a ``tools/list_changed`` heard by
one reaches every one, and Redis stopped, paused or flushed mid-turn fails no turn and caches nothing
partial. Without Redis, each replica lists every server itself: the contrast."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import anyio
import pytest
import redis.asyncio
from tests._replicas import Chat, ReplicaProcess, replica_processes
from tests.faults._mcp_faults import McpFaults
from tests.test_redis_cache import KEY, replica
from tests.test_shared_discovery import serve_plugins

from chat_mcp_primer.redis import RedisCacheSettings
from chat_mcp_primer.redis import _codec as codec
from chat_mcp_primer.testing import MockClock, RedisServer, WorkspaceMCPServer, echo_tools
from chat_mcp_primer.workspace_mcp import RemoteTool

REPLICAS = 3
WORKSPACES = 30
CHATS = 300
TOOLS = ("grep", "sed", "lint")
OFFERED = [f"code__{name}" for name in TOOLS]
SCOPE = "replicas"
# Guards against hangs in real time; never an assertion about speed.
GUARD_S = 60
# How often a test looks at something another thread or process does (listings held at the server).
POLL_S = 0.01
# Three replicas, the MCP server and Redis share this machine's cores: a hundred chats starting at once can
# keep a replica's loop from reading Redis's answer for longer than the default call timeout, which would
# read as an outage (each replica then lists alone). Roomier here; the outage test has its own settings.
ROOMY = {"call_timeout": 5.0}
# Quick to notice Redis trouble, so the outage test stays short in real time.
QUICK = {"call_timeout": 0.2, "outage_pause": 0.3, "lease_ttl": 0.6, "lease_poll_interval": 0.05}
# How long the outage test holds every listing at the server (on its gate's fake clock, advanced at once).
HELD_S = 1.0

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # redis's asyncio client reads what the replicas stored


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    connection = redis.asyncio.Redis.from_url(redis_server.url)
    await connection.flushall()
    yield connection
    await connection.aclose()


def spread(url: str, *, chats: int = CHATS, workspaces: int = WORKSPACES, tag: str = "") -> list[list[Chat]]:
    """``chats`` chats on ``workspaces`` workspaces (one agent each, whose one server is at ``url``), dealt
    to the replicas so that every workspace has chats on every replica."""
    dealt: list[list[Chat]] = [[] for _ in range(REPLICAS)]
    for number in range(chats):
        on, turn = number % REPLICAS, number // REPLICAS
        workspace = turn % workspaces
        dealt[on].append((f"{tag}chat-{number}", f"{tag}ws-{workspace}", f"{tag}agent-{workspace}", url))
    return dealt


async def offer_everywhere(replicas: Sequence[ReplicaProcess], dealt: Sequence[Sequence[Chat]]) -> dict[str, list[str]]:
    """Every replica's chats offered their tools at once; the tools each chat was offered."""
    offered: dict[str, list[str]] = {}

    async def offer(process: ReplicaProcess, chats: Sequence[Chat]) -> None:
        offered.update(await process.offer(chats))

    async with anyio.create_task_group() as group:
        for process, chats in zip(replicas, dealt, strict=True):
            group.start_soon(offer, process, chats)
    return offered


async def test_three_replicas_list_each_server_once_for_300_chats_and_a_moved_turn_lists_nothing(
    redis_server: RedisServer, client: redis.asyncio.Redis
) -> None:
    with WorkspaceMCPServer(echo_tools(*TOOLS), name="code") as server:
        dealt = spread(server.url)
        # One workspace per replica that only it has seen, for a turn that moves to a replica without a copy.
        alone = [[(f"alone-{n}", f"alone-ws-{n}", f"alone-agent-{n}", server.url)] for n in range(REPLICAS)]
        async with replica_processes(
            REPLICAS, redis_url=redis_server.url, scope=SCOPE, cache_settings=ROOMY
        ) as replicas:
            first = await offer_everywhere(replicas, dealt)
            listed_once = server.list_calls
            moved = await offer_everywhere(replicas, [dealt[-1], *dealt[:-1]])  # each chat's next turn, elsewhere
            alone_first = await offer_everywhere(replicas, alone)
            listed_alone = server.list_calls
            alone_moved = await offer_everywhere(replicas, [alone[-1], *alone[:-1]])
            listed_here = [(await r.events()).get("discovery.server_listed", 0) for r in replicas]
    assert first == moved == {chat[0]: OFFERED for chats in dealt for chat in chats}
    assert listed_once == WORKSPACES
    assert alone_first == alone_moved == {chats[0][0]: OFFERED for chats in alone}
    assert listed_alone == server.list_calls == WORKSPACES + REPLICAS  # a moved turn read Redis: no listing
    assert sum(listed_here) == WORKSPACES + REPLICAS


async def test_without_redis_each_replica_lists_every_server_itself() -> None:
    """The contrast: the same three replicas and 300 chats, each replica on a MemoryToolCache of its own."""
    with WorkspaceMCPServer(echo_tools(*TOOLS), name="code") as server:
        dealt = spread(server.url)
        async with replica_processes(REPLICAS, redis_url=None) as replicas:
            offered = await offer_everywhere(replicas, dealt)
    assert offered == {chat[0]: OFFERED for chats in dealt for chat in chats}
    assert server.list_calls == REPLICAS * WORKSPACES


async def test_list_changed_heard_by_one_replica_reaches_the_next_step_on_every_replica(
    redis_server: RedisServer, client: redis.asyncio.Redis
) -> None:
    with serve_plugins() as endpoint:
        chats: list[Chat] = [
            (f"plugins-chat-{n}", "ws-plugins", "agent-plugins", endpoint.url) for n in range(REPLICAS)
        ]
        async with replica_processes(
            REPLICAS, redis_url=redis_server.url, scope=SCOPE, cache_settings=ROOMY
        ) as replicas:
            before = [await r.offer([chat], "plugins", keep=True) for r, chat in zip(replicas, chats, strict=True)]
            caller = ("plugins-caller", "ws-plugins", "agent-plugins", endpoint.url)
            enabled = await replicas[0].ask(
                "call", server="plugins", chat=list(caller), tool="plugins__enable_extra", arguments={}
            )
            await replicas[0].wait_event("discovery.catalogue_changed")
            for other in replicas[1:]:
                await other.wait_event("cache.news", kind="invalidated", server="plugins")
            # The next step of each replica's open turn; the replica that heard the change goes last, so its
            # own invalidation in Redis has surely been answered (the others heard it from there).
            after = {}
            for r, chat in [*zip(replicas, chats, strict=True)][::-1]:
                after.update(await r.offer([chat], "plugins", keep=True))
    assert enabled["text"] == "enabled"
    assert all("plugins__extra" not in tools for offered in before for tools in offered.values())
    assert all("plugins__extra" in tools for tools in after.values())
    assert len(after) == REPLICAS


async def stored_catalogues(client: redis.asyncio.Redis) -> list[list[str]]:
    """The tool names of every catalogue the replicas stored in Redis (None for one that is not a catalogue)."""
    settings = RedisCacheSettings()
    stored = []
    async for key in client.scan_iter(match=f"{settings.key_prefix}:{SCOPE}:tools:*"):
        raw = await client.get(key)
        tools = codec.decode_catalogue(raw, settings.max_catalogue_bytes) if isinstance(raw, bytes) else None
        stored.append([f"{tool.server}__{tool.name}" for tool in tools or ()])
    return stored


async def test_a_replica_whose_miss_is_older_than_another_replicas_whole_listing_reads_it_back(
    redis_server: RedisServer, client: redis.asyncio.Redis
) -> None:
    """Between a replica's miss and its lease, another replica may list, cache and give the lease back: the
    lease is then free, and the catalogue is read back instead of the server being listed a second time."""
    tools = (RemoteTool("code", "grep", "Search.", {"type": "object"}),)
    async with replica(redis_server.url) as (first, _), replica(redis_server.url) as (second, _):
        assert await second.get(KEY) is None  # the miss
        async with first.listing(KEY, GUARD_S) as listing:  # the other replica's listing, start to end
            assert listing.elsewhere is None
            assert await first.put(KEY, tools, await first.generation(KEY))
            listing.finished(tools, None)
        async with second.listing(KEY, GUARD_S) as late:
            assert late.elsewhere is not None
            assert late.elsewhere.tools == tools


async def test_redis_stopped_paused_and_flushed_mid_turn_fails_no_turn_and_caches_nothing_partial() -> None:
    gate = MockClock()  # the listings held at the server go on when it is advanced
    faults = McpFaults(gate)
    stored: list[list[str]] = []
    with (
        RedisServer() as own,
        WorkspaceMCPServer(echo_tools(*TOOLS), name="code", middleware=faults) as server,
    ):
        client = redis.asyncio.Redis.from_url(own.url)
        try:
            async with replica_processes(REPLICAS, redis_url=own.url, scope=SCOPE, cache_settings=QUICK) as replicas:

                async def mid_turn(tag: str, trouble: Callable[[], Awaitable[None]], mend: Callable[[], None]) -> None:
                    """Chats on fresh workspaces, offered their tools while ``trouble`` strikes Redis with their
                    listings held at the server; then, Redis mended, the chats of other fresh workspaces."""
                    dealt = spread(server.url, chats=60, workspaces=6, tag=f"{tag}-")
                    faults.delay(HELD_S, method="tools/list")
                    for r, chats in zip(replicas, dealt, strict=True):
                        await r.send("offer", server="code", chats=[list(chat) for chat in chats])
                    with anyio.fail_after(GUARD_S):
                        # A listing is under way: the turns are mid-discovery. (A counter in the server's
                        # thread: nothing here to wait on.)
                        while faults.held == 0:  # noqa: ASYNC110
                            await anyio.sleep(POLL_S)
                    await trouble()
                    faults.clear()
                    await gate.advance(HELD_S)
                    offered = {}
                    for r in replicas:
                        offered.update((await r.answer())["tools"])
                    assert offered == {chat[0]: OFFERED for chats in dealt for chat in chats}, tag
                    mend()
                    await anyio.sleep(QUICK["outage_pause"])  # every replica asks Redis again at its next call
                    after = spread(server.url, chats=60, workspaces=6, tag=f"{tag}-after-")
                    assert await offer_everywhere(replicas, after) == {c[0]: OFFERED for cs in after for c in cs}, tag
                    stored.extend(await stored_catalogues(client))

                async def stop() -> None:
                    own.stop()

                async def pause() -> None:
                    own.pause()
                    await anyio.sleep(2 * QUICK["call_timeout"])  # the calls under way time out meanwhile

                async def flush() -> None:
                    await client.flushall()

                await mid_turn("stopped", stop, own.start)
                await mid_turn("paused", pause, own.resume)
                for r in replicas:  # each saw both outages, and said when each was over
                    await r.wait_event("cache.reconnected", count=2)
                await mid_turn("flushed", flush, lambda: None)
                unavailable = [(await r.events()).get("cache.unavailable", 0) for r in replicas]
        finally:
            await client.aclose()
    assert stored  # the turns after each trouble were cached again
    assert all(names == OFFERED for names in stored)  # and every catalogue in Redis is complete
    # Each replica said so when Redis stopped and when it paused (and maybe more: a pooled connection
    # opened before a restart fails once, a call behind a busy loop can time out).
    assert all(count >= 2 for count in unavailable)
