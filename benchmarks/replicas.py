"""Benchmark 7: several replicas sharing their tool catalogue on Redis (`RedisToolCache`), beside the same
replicas each on a `MemoryToolCache` of its own.

The replicas run in this process, each a `WorkspaceMcpHub` (what ``async with ChatRuntime(...)`` shares
between its chats) with its own `RedisToolCache` and its own connection to a real ``redis-server`` on
loopback, on the real clock. In one process the replicas share one event loop, which is the harsher case for
their timings (a process per replica would spread them over the machine's cores), and the hit cost is
measured without other processes competing for the CPU. Four measures:

- *listings per (agent, server)*: every chat of every replica starts at once, ``chats`` chats on
  ``workspaces`` workspaces whose one MCP server backs them all, dealt so each workspace has chats on every
  replica: ``tools/list`` calls at the server, per workspace;
- *time until every chat is offered its tools*: from that start to each chat's first ``prepare_tools``
  returning the workspace tools (p50, p95, max);
- *hit cost*: a fresh turn's first ``prepare_tools`` answered from a replica's local copy of the shared
  catalogue (no Redis call: checked), at 10, 100 and 1,000 tools, beside benchmark 3's `MemoryToolCache`;
- *a turn moving to another replica*: its first ``prepare_tools`` on a replica that never saw the workspace
  (a Redis read, no listing: checked), beside what that costs without Redis (a dial and a listing there).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import anyio
import redis.asyncio

from benchmarks import prepare_tools
from benchmarks._common import GUARD_S, Row, Section, harness_frozen, ms, percentile, start_servers, stop_servers, us
from chat_mcp_primer import InMemoryWorkspaces, MemoryToolCache, SystemClock, WorkspaceBinding
from chat_mcp_primer.events import Event, EventHandler, EventName, Events
from chat_mcp_primer.redis import RedisCacheSettings, RedisToolCache
from chat_mcp_primer.testing import RedisServer, RedisServerError, WorkspaceMCPServer, echo_tools
from chat_mcp_primer.workspace_mcp import ToolCache
from chat_mcp_primer.workspace_mcp._hub import WorkspaceMcpHub

NAME = "7 replicas"
REPLICAS = 3
SERVER = "code"
SCOPE = "bench"
SIZES = prepare_tools.SIZES
HIT_TARGET_S = prepare_tools.TARGET_S
# The tools of the server behind the replicas' chats and the moving turns: a mid-sized catalogue.
TOOLS = 20
# The replicas' cache settings side by side: the defaults, and a call timeout roomy enough for a loop that
# starts hundreds of chats at once (its answers from Redis wait behind their work, and a call that waits
# past ``call_timeout`` reads as an outage: the replica then discovers on its own for ``outage_pause``).
DEFAULTS = RedisCacheSettings()
ROOMY = RedisCacheSettings(call_timeout=2.0)


class Failure(Exception):
    """The benchmark could not reach the state it measures."""


@dataclass(frozen=True, slots=True)
class Spread:
    """Every chat of every replica offered its tools at once."""

    listings_per_server: float
    offered_after: tuple[float, ...]  # seconds, per chat; infinite for a chat never offered its tools
    outages: int  # calls to Redis given up (``cache.unavailable``), over every replica


@contextlib.asynccontextmanager
async def replica(
    url: str | None,
    scope: str = SCOPE,
    settings: RedisCacheSettings = DEFAULTS,
    on_event: EventHandler | None = None,
) -> AsyncIterator[tuple[WorkspaceMcpHub, RedisToolCache | None]]:
    """One replica: its own connection and `RedisToolCache` on ``url`` (None: a `MemoryToolCache`)."""
    clock = SystemClock()
    async with contextlib.AsyncExitStack() as stack:
        shared: RedisToolCache | None = None
        cache: ToolCache = MemoryToolCache()
        if url is not None:
            connection = redis.asyncio.Redis.from_url(url)
            stack.push_async_callback(connection.aclose)
            shared = await stack.enter_async_context(
                RedisToolCache(connection, scope=scope, clock=clock, settings=settings)
            )
            cache = shared
        hub = WorkspaceMcpHub(cache=cache, clock=clock, events=Events(clock.now, on_event))
        await stack.enter_async_context(hub)
        yield hub, shared


@contextlib.asynccontextmanager
async def replicas(
    url: str | None, scope: str, settings: RedisCacheSettings, on_event: EventHandler
) -> AsyncIterator[list[tuple[WorkspaceMcpHub, RedisToolCache | None]]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(replica(url, scope, settings, on_event)) for _ in range(REPLICAS)]


def binding_of(workspace: str) -> WorkspaceBinding:
    return WorkspaceBinding(workspace, agent_id=f"agent-{workspace}")


async def first_offer(
    hub: WorkspaceMcpHub, workspaces: InMemoryWorkspaces, chat_id: str, binding: WorkspaceBinding
) -> int:
    """How many tools a fresh turn of ``chat_id`` is offered at its first step."""
    async with hub.turn(chat_id=chat_id, binding=binding, source=workspaces) as turn:
        return len(await turn.prepare_tools([]) or ())


def bound(workspaces: InMemoryWorkspaces, server: WorkspaceMCPServer, count: int, tag: str) -> list[str]:
    """``count`` workspaces, one agent each, whose one MCP server is ``server``."""
    names = [f"{tag}-{number}" for number in range(count)]
    for name in names:
        workspaces.set_agent(name, binding_of(name).agent_id or "", (server.endpoint(SERVER),))
    return names


async def spread(
    url: str | None, settings: RedisCacheSettings, server: WorkspaceMCPServer, chats: int, workspace_count: int
) -> Spread:
    workspaces = InMemoryWorkspaces()
    tag = f"spread-{url is not None}-{settings.call_timeout}"
    names = bound(workspaces, server, workspace_count, tag)
    listed = server.list_calls
    offered_after: list[float] = []
    outages: list[Event] = []

    def heard(event: Event) -> None:
        if event.name == EventName.CACHE_UNAVAILABLE:
            outages.append(event)

    async with replicas(url, tag, settings, heard) as hubs:
        started = time.perf_counter()

        async def chat(number: int) -> None:
            hub, _ = hubs[number % REPLICAS]
            workspace = names[(number // REPLICAS) % len(names)]
            tools = await first_offer(hub, workspaces, f"chat-{number}", binding_of(workspace))
            offered_after.append(time.perf_counter() - started if tools == len(server.tools) else math.inf)

        with anyio.fail_after(GUARD_S), harness_frozen():
            async with anyio.create_task_group() as group:
                for number in range(chats):
                    group.start_soon(chat, number)
    return Spread((server.list_calls - listed) / workspace_count, tuple(offered_after), len(outages))


async def hit_costs(url: str, servers: dict[int, WorkspaceMCPServer], fresh: dict[int, int]) -> dict[int, float]:
    """Seconds per fresh turn's first ``prepare_tools`` answered from a replica's local copy, per size."""
    costs: dict[int, float] = {}
    for size, server in servers.items():
        workspaces = InMemoryWorkspaces()
        binding = prepare_tools.BINDING
        workspaces.set_agent(binding.workspace_id, binding.agent_id or "", (server.endpoint("bench"),))
        async with replica(url, f"{SCOPE}-{size}") as (hub, cache):  # benchmark 3's workspace, at each size
            assert cache is not None
            await first_offer(hub, workspaces, "chat-fill", binding)  # lists, stores in Redis, keeps a copy
            calls = cache.calls
            _, costs[size] = await prepare_tools.measure_turns(server, workspaces, hub, "primed", 1, fresh[size])
            if cache.calls != calls:
                raise Failure(f"a hit on the local copy called Redis ({cache.calls - calls} calls at {size} tools)")
    return costs


async def moves(url: str | None, server: WorkspaceMCPServer, count: int) -> tuple[float, ...]:
    """Seconds per moved turn's first ``prepare_tools`` on a replica that never saw its workspace: on Redis
    a read there (it must list nothing), without Redis a dial and a listing there."""
    workspaces = InMemoryWorkspaces()
    names = bound(workspaces, server, count, f"move-{url is not None}")
    spent: list[float] = []
    async with replica(url) as (first, _), replica(url) as (second, _):
        for name in names:
            await first_offer(first, workspaces, f"chat-{name}", binding_of(name))  # its turn before, elsewhere
        listed = server.list_calls
        with harness_frozen():
            for name in names:
                started = time.perf_counter()
                offered = await first_offer(second, workspaces, f"chat-{name}", binding_of(name))
                spent.append(time.perf_counter() - started)
                if offered != len(server.tools):
                    raise Failure(f"a moved turn was offered {offered} of {len(server.tools)} tools")
    if url is not None and server.list_calls != listed:
        raise Failure(f"moved turns listed {server.list_calls - listed} times although Redis held the catalogue")
    return tuple(spent)


@dataclass(frozen=True, slots=True)
class Results:
    spread: dict[RedisCacheSettings, Spread]
    alone: Spread
    hits: dict[int, float]
    memory_hits: dict[int, float]
    moved: dict[bool, tuple[float, ...]]


async def measure(url: str, chats: int, workspace_count: int, fresh: dict[int, int], moved: int) -> Results:
    main = WorkspaceMCPServer(echo_tools(*(f"tool_{i}" for i in range(TOOLS))), name=SERVER)
    sized = {size: WorkspaceMCPServer(echo_tools(*(f"tool_{i}" for i in range(size))), name="bench") for size in SIZES}
    start_servers([main, *sized.values()])
    try:
        by_settings = {
            settings: await spread(url, settings, main, chats, workspace_count) for settings in (DEFAULTS, ROOMY)
        }
        alone = await spread(None, DEFAULTS, main, chats, workspace_count)
        hits = await hit_costs(url, sized, fresh)
        memory = {
            size: (await prepare_tools.measure_size(server, "primed", 1, fresh[size]))[1]
            for size, server in sized.items()
        }
        moves_by_cache = {
            with_redis: await moves(url if with_redis else None, main, moved) for with_redis in (True, False)
        }
        return Results(by_settings, alone, hits, memory, moves_by_cache)
    finally:
        stop_servers([main, *sized.values()])


def summarise(results: Results, chats: int, workspace_count: int, fresh: dict[int, int]) -> Section:
    section = Section()
    alone = results.alone

    def spread_cell(offered: Sequence[float]) -> str:
        return " / ".join(ms(percentile(offered, q)) for q in (50, 95, 100))

    for settings, shared in results.spread.items():
        with_redis = f"with Redis, call_timeout {settings.call_timeout:g} s"
        section.rows.append(
            Row(
                NAME,
                f"{REPLICAS} replicas x {chats} chats on {workspace_count} workspaces: listings per (agent, server) "
                f"(Redis calls given up as outages), {with_redis} / each replica alone",
                f"{shared.listings_per_server:g} ({shared.outages} outages)",
                f"{alone.listings_per_server:g}",
                "1",
                shared.listings_per_server == 1,
            )
        )
        section.rows.append(
            Row(
                NAME,
                f"time until every chat is offered its tools: p50 / p95 / max, {with_redis} / alone",
                spread_cell(shared.offered_after),
                spread_cell(alone.offered_after),
                "—",
            )
        )
    for size in SIZES:
        ours, memory = results.hits[size], results.memory_hits[size]
        target = f"≤ {us(HIT_TARGET_S)}" if size == 100 else "flat"
        met = ours <= HIT_TARGET_S if size == 100 else None
        section.rows.append(
            Row(
                NAME,
                f"hit on a RedisToolCache's local copy / on a MemoryToolCache: prepare_tools at {size:,} tools",
                us(ours),
                us(memory),
                target,
                met,
            )
        )
    small, large = results.hits[SIZES[0]], results.hits[SIZES[-1]]
    section.rows.append(
        Row(
            NAME,
            f"hit on a RedisToolCache's local copy: cost at {SIZES[-1]:,} ÷ cost at {SIZES[0]} tools",
            f"{large / small:.1f}x",
            f"{results.memory_hits[SIZES[-1]] / results.memory_hits[SIZES[0]]:.1f}x",
            "≈ 1x (flat)",
            prepare_tools.is_flat(small, large),
        )
    )
    read, listed = results.moved[True], results.moved[False]
    section.rows.append(
        Row(
            NAME,
            f"a turn moving to another replica: its first prepare_tools there (p50 / p95, {TOOLS} tools), "
            "a Redis read / alone: a dial and a listing",
            f"{ms(percentile(read, 50))} / {ms(percentile(read, 95))}",
            f"{ms(percentile(listed, 50))} / {ms(percentile(listed, 95))}",
            "—",
        )
    )
    section.notes.append(
        f"7: the {REPLICAS} replicas run in this process (one event loop: harsher on their timings than a process "
        "each), each a WorkspaceMcpHub with its own RedisToolCache and connection to a redis-server on loopback, "
        f"at the default settings and with call_timeout {ROOMY.call_timeout:g} s; the reference column is the same "
        f"replicas each on a MemoryToolCache of its own. One MCP server of {TOOLS} tools backs every workspace; the "
        "chats are dealt so every workspace has chats on every replica. An outage: a Redis call that waited past "
        "call_timeout behind the loop's other work; that replica then lists on its own for outage_pause. Hits: mean "
        f"over {'/'.join(str(fresh[s]) for s in SIZES)} fresh turns, no Redis call made (checked), beside the same on "
        "a warm MemoryToolCache (benchmark 3): the cost is the fresh turn's, not the cache's. Moves: "
        f"{len(read)} turns, each to a replica that never saw its workspace (on Redis: no listing, checked)."
    )
    return section


def run(quick: bool) -> Section:
    chats, workspace_count = (60, 6) if quick else (300, 30)
    fresh = {10: 100, 100: 50, 1_000: 10} if quick else {10: 1_000, 100: 500, 1_000: 100}
    moved = 10 if quick else 50
    try:
        server = RedisServer()
    except RedisServerError as exc:
        return Section(notes=[f"7: not run: {exc}"])
    try:
        with server:
            results = anyio.run(measure, server.url, chats, workspace_count, fresh, moved, backend="asyncio")
    except (Failure, prepare_tools.Failure, RedisServerError) as exc:
        return Section(notes=[f"7: failed: {exc}"])
    return summarise(results, chats, workspace_count, fresh)
