"""Benchmark 3: the cost of `TurnWorkspace.prepare_tools` when the answer is already known.

Two cases at 10, 100 and 1,000 workspace tools:

- *discovery done*: the turn's primer succeeded and a step already merged the tools; every later step
  calls ``prepare_tools`` again (the chat loop does before every step);
- *warm shared cache*: a fresh `TurnWorkspace` (a new turn of a chat already bound to the workspace) whose
  first ``prepare_tools`` is answered from a `MemoryToolCache` another turn filled: no listing. Its turns
  share a `WorkspaceMcpHub`, as the turns of a runtime used as ``async with ChatRuntime(...)`` do.

Only the ``prepare_tools`` call is timed (time.perf_counter), not entering or leaving the turn.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import anyio

from benchmarks._common import CheckStatus, Row, Section, harness_frozen, start_servers, stop_servers, us
from chat_mcp_primer import MemoryToolCache, PrimerSettings, SystemClock, Tool, TurnWorkspace, WorkspaceBinding
from chat_mcp_primer.events import Events
from chat_mcp_primer.testing import InMemoryWorkspaces, WorkspaceMCPServer, echo_tools
from chat_mcp_primer.workspace_mcp import Strategy
from chat_mcp_primer.workspace_mcp._hub import WorkspaceMcpHub

NAME = "3 prepare_tools"
SIZES = (10, 100, 1_000)
STRATEGIES: tuple[Strategy, ...] = ("primed", "reference")
BINDING = WorkspaceBinding("ws-bench", build_id="build-1", agent_id="agent-1")
TARGET_S = 20e-6


class Failure(Exception):
    """The benchmark could not reach the state it measures."""


def new_hub(cache: MemoryToolCache, strategy: Strategy) -> WorkspaceMcpHub:
    """What `async with ChatRuntime(...)` shares between the turns of every chat."""
    clock = SystemClock()
    return WorkspaceMcpHub(cache=cache, clock=clock, primer=PrimerSettings(strategy=strategy), events=Events(clock.now))


def new_turn(
    workspaces: InMemoryWorkspaces, hub: WorkspaceMcpHub, strategy: Strategy, binding: WorkspaceBinding | None
) -> TurnWorkspace:
    return hub.turn(chat_id="chat-bench", binding=binding, source=workspaces, reserved_names=[CheckStatus.spec.name])


async def measure_size(server: WorkspaceMCPServer, strategy: Strategy, calls: int, fresh: int) -> tuple[float, float]:
    """Seconds per call: (discovery done, fresh turn on a warm cache)."""
    workspaces = InMemoryWorkspaces()
    workspaces.set_agent(BINDING.workspace_id, "agent-1", (server.endpoint("bench"),))
    cache = MemoryToolCache()
    async with new_hub(cache, strategy) as hub:
        return await measure_turns(server, workspaces, hub, strategy, calls, fresh)


async def measure_turns(
    server: WorkspaceMCPServer,
    workspaces: InMemoryWorkspaces,
    hub: WorkspaceMcpHub,
    strategy: Strategy,
    calls: int,
    fresh: int,
) -> tuple[float, float]:
    builtin: Sequence[Tool] = (CheckStatus(),)
    expected = len(server.tools) + len(builtin)
    async with new_turn(workspaces, hub, strategy, None) as turn:
        turn.bind(BINDING)
        turn.agent_ready()
        with anyio.fail_after(30):
            await turn.wait_for_primer()
        merged = await turn.prepare_tools(builtin)
        if merged is None or len(merged) != expected or not turn.discovery_done:
            raise Failure(f"discovery did not complete for {len(server.tools)} tools ({strategy})")
        current: Sequence[Tool] = tuple(merged)
        with harness_frozen():
            started = time.perf_counter()
            for _ in range(calls):
                await turn.prepare_tools(current)
            done = (time.perf_counter() - started) / calls

    listings = server.list_calls
    spent = 0.0
    with harness_frozen():
        for _ in range(fresh):
            async with new_turn(workspaces, hub, strategy, BINDING) as turn:
                started = time.perf_counter()
                merged = await turn.prepare_tools(builtin)
                spent += time.perf_counter() - started
            if merged is None or len(merged) != expected:
                raise Failure(f"a fresh turn was not served {len(server.tools)} tools from the cache ({strategy})")
    if server.list_calls != listings:
        raise Failure(f"a fresh turn listed tools although the cache was warm ({strategy})")
    return done, spent / fresh


async def measure(calls: int, fresh: dict[int, int]) -> dict[tuple[Strategy, int], tuple[float, float]]:
    servers = {
        size: WorkspaceMCPServer(echo_tools(*(f"tool_{i}" for i in range(size))), name="bench") for size in SIZES
    }
    start_servers(list(servers.values()))
    try:
        results: dict[tuple[Strategy, int], tuple[float, float]] = {}
        for size, server in servers.items():
            for strategy in STRATEGIES:
                results[strategy, size] = await measure_size(server, strategy, calls, fresh[size])
        return results
    finally:
        stop_servers(servers.values())


def is_flat(small: float, large: float) -> bool | None:
    """Flat: at most twice the cost at 100x the tools, or within a microsecond (timer noise at this scale)."""
    if math.isnan(small) or math.isnan(large):
        return None
    return large <= 2 * small or large - small <= 1e-6


def run(quick: bool) -> Section:
    calls = 1_000 if quick else 10_000
    fresh = {10: 200, 100: 100, 1_000: 20} if quick else {10: 1_000, 100: 500, 1_000: 100}
    section = Section()
    try:
        results = anyio.run(measure, calls, fresh)
    except Failure as exc:
        section.notes.append(f"3: failed: {exc}")
        return section

    for kind, index in (("discovery done", 0), ("fresh turn, warm shared cache", 1)):
        for size in SIZES:
            ours, ref = results["primed", size][index], results["reference", size][index]
            target = f"≤ {us(TARGET_S)}" if size == 100 else "flat"
            met = ours <= TARGET_S if size == 100 else None
            section.rows.append(Row(NAME, f"{kind}: per call at {size:,} tools", us(ours), us(ref), target, met))
        flat = {s: results[s, SIZES[-1]][index] / results[s, SIZES[0]][index] for s in STRATEGIES}
        section.rows.append(
            Row(
                NAME,
                f"{kind}: cost at {SIZES[-1]:,} ÷ cost at {SIZES[0]} tools",
                f"{flat['primed']:.1f}x",
                f"{flat['reference']:.1f}x",
                "≈ 1x (flat)",
                is_flat(results["primed", SIZES[0]][index], results["primed", SIZES[-1]][index]),
            )
        )
    section.notes.append(
        f"3: discovery done = mean of {calls:,} back-to-back calls in one turn; fresh turn = mean over "
        f"{'/'.join(str(fresh[s]) for s in SIZES)} fresh TurnWorkspaces (at {'/'.join(f'{s:,}' for s in SIZES)} tools) "
        "whose first prepare_tools hit a MemoryToolCache filled by an earlier turn (no tools/list made); "
        "only the prepare_tools call is timed, with the harness's objects frozen out of the garbage collector."
    )
    return section
