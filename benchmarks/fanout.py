"""Benchmark 4: fan-out. Many chats over many workspaces prime at once through one shared runtime.

Every chat's model calls "provision" at step 0; the tool waits at a barrier until every chat has called
it, then binds the chat to its workspace and calls ``agent_ready()``, so all primers start together. The
workspaces' MCP servers are ready from the start: the ideal is one listing per (agent, server), however
many chats share the agent, and every chat offered its tools one dial and one listing later.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from benchmarks._common import (
    GUARD_S,
    CheckStatus,
    LoopMonitor,
    Row,
    Section,
    WorkingModel,
    harness_frozen,
    ms,
    warm_up,
)
from benchmarks._server_farm import ServerFarm
from chat_mcp_primer import Chat, ChatRuntime, Event, PrimerSettings, SystemClock, WorkspaceBinding
from chat_mcp_primer.runtime import WorkspacesFrom
from chat_mcp_primer.testing import InMemoryWorkspaces, ProvisionTool
from chat_mcp_primer.workspace import McpEndpoint
from chat_mcp_primer.workspace_mcp import Strategy

NAME = "4 fan-out"
ENDPOINT = "tools"
STEP_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class Shape:
    workspaces: int
    chats_per_workspace: int
    servers: int  # each server is exposed as the MCP endpoint of workspaces // servers agents

    @property
    def chats(self) -> int:
        return self.workspaces * self.chats_per_workspace


@dataclass(slots=True)
class Outcome:
    strategy: Strategy
    listings_per_pair: float = math.nan  # tools/list calls per (agent, server) pair, mean
    listings_max_server: int = 0
    dials_per_pair: float = math.nan
    all_offered_s: float = math.nan  # from the moment all primers started until the last chat was offered
    offered: int = 0
    first_step_share: float = math.nan
    rss_growth: int = 0
    worst_lag_s: float = math.nan
    worst_lag_primed_s: float = math.nan  # once every primer has started: the barrier's release burst excluded
    worst_lag_between_gc_s: float = math.nan  # leaving out the samples during which the garbage collector ran
    longest_gc_s: float = math.nan  # the longest garbage collection while the chats ran
    wall_s: float = math.nan
    errors: Counter[str] = field(default_factory=Counter)


async def run_strategy(shape: Shape, strategy: Strategy, farm: ServerFarm) -> Outcome:
    outcome = Outcome(strategy)
    clock = SystemClock()
    workspaces = InMemoryWorkspaces()
    per_server = shape.workspaces // shape.servers
    bindings: dict[str, WorkspaceBinding] = {}
    for w in range(shape.workspaces):
        url = farm.urls[w // per_server]
        workspaces.set_agent(f"ws-{w}", f"agent-{w}", (McpEndpoint(server=ENDPOINT, url=url),))
        for c in range(shape.chats_per_workspace):
            bindings[f"chat-{w}-{c}"] = WorkspaceBinding(f"ws-{w}", build_id=f"build-{w}", agent_id=f"agent-{w}")

    names: Counter[str] = Counter()
    all_primers_started = [math.inf]  # time.perf_counter

    def count(event: Event) -> None:
        names[event.name] += 1
        if event.name == "primer.started" and names[event.name] == shape.chats:
            all_primers_started[0] = time.perf_counter()

    arrived = 0
    everyone_provisioning = anyio.Event()
    primers_started_at = math.nan

    async def barrier() -> None:
        nonlocal arrived, primers_started_at
        arrived += 1
        if arrived == shape.chats:
            primers_started_at = clock.now()
            everyone_provisioning.set()
        await everyone_provisioning.wait()

    model = WorkingModel(f"{ENDPOINT}__", step_seconds=STEP_SECONDS, now=clock.now)
    runtime = ChatRuntime(
        model,
        workspaces=WorkspacesFrom(
            workspaces, tools=lambda turn: [ProvisionTool(turn, bindings[turn.chat_id], before=barrier)]
        ),
        tools=[CheckStatus()],
        clock=clock,
        primer=PrimerSettings(strategy=strategy),
        on_event=count,
        max_steps=int(GUARD_S / STEP_SECONDS),
    )
    listings_before = farm.list_calls()

    async def one_chat(chat_id: str) -> None:
        try:
            await runtime.run_turn(Chat(id=chat_id, owner="bench"), chat_id)
        except Exception as exc:
            outcome.errors[type(exc).__name__] += 1

    monitor = LoopMonitor()
    started = time.perf_counter()
    async with runtime, anyio.create_task_group() as outer:
        outer.start_soon(monitor.run)
        with anyio.move_on_after(GUARD_S) as guard:
            async with anyio.create_task_group() as chats:
                for chat_id in bindings:
                    chats.start_soon(one_chat, chat_id)
        if guard.cancelled_caught:
            outcome.errors["guard timeout"] += 1
        outer.cancel_scope.cancel()
    outcome.wall_s = time.perf_counter() - started

    listings = [after - before for after, before in zip(farm.list_calls(), listings_before, strict=True)]
    outcome.listings_per_pair = sum(listings) / shape.workspaces
    outcome.listings_max_server = max(listings)
    outcome.dials_per_pair = names["session.dialing"] / shape.workspaces
    offered = [model.offered[chat_id] for chat_id in bindings if chat_id in model.offered]
    outcome.offered = len(offered)
    if len(offered) == shape.chats:
        outcome.all_offered_s = max(o.at for o in offered) - primers_started_at
    outcome.first_step_share = sum(1 for o in offered if o.step == 1) / shape.chats
    outcome.rss_growth = monitor.rss_growth
    outcome.worst_lag_s = monitor.worst_lag
    outcome.worst_lag_primed_s = monitor.worst_lag_after(all_primers_started[0])
    outcome.worst_lag_between_gc_s = monitor.worst_lag_between_collections()
    outcome.longest_gc_s = monitor.collections.longest()
    return outcome


async def measure(shape: Shape, strategy: Strategy) -> Outcome:
    with ServerFarm(shape.servers, ["search", "run_tests"]) as farm:
        await warm_up()
        with harness_frozen():
            return await run_strategy(shape, strategy, farm)


def in_fresh_process(shape: Shape, strategy: Strategy) -> Outcome:
    """Run one strategy in a process of its own: its memory baseline is not the other run's leftovers."""
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    argv = [sys.executable, "-m", "benchmarks.fanout", strategy, *(str(n) for n in dataclasses.astuple(shape))]
    outcome = Outcome(strategy)
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=GUARD_S + 60, env=env, cwd=root, check=False
        )
    except subprocess.TimeoutExpired:
        outcome.errors["the run's process timed out"] += 1
        return outcome
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        outcome.errors[f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"] += 1
        return outcome
    data: dict[str, Any] = json.loads(lines[-1])
    data["errors"] = Counter(data["errors"])
    return Outcome(**data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fanout", description="One fan-out run; prints JSON.")
    parser.add_argument("strategy", choices=["primed", "reference"])
    parser.add_argument("workspaces", type=int)
    parser.add_argument("chats_per_workspace", type=int)
    parser.add_argument("servers", type=int)
    args = parser.parse_args(argv)
    shape = Shape(args.workspaces, args.chats_per_workspace, args.servers)
    outcome = anyio.run(measure, shape, args.strategy)
    print(json.dumps(dataclasses.asdict(outcome)))
    return 0


def run(quick: bool) -> Section:
    shape = Shape(workspaces=10, chats_per_workspace=10, servers=10) if quick else Shape(100, 10, 100)
    ours, ref = (in_fresh_process(shape, strategy) for strategy in ("primed", "reference"))
    section = Section()

    def mb(n: int) -> str:
        return f"{n / 2**20:.1f} MB"

    section.rows += [
        Row(
            NAME,
            "tools/list calls per (agent, server) (max on one server)",
            f"{ours.listings_per_pair:.1f} ({ours.listings_max_server})",
            f"{ref.listings_per_pair:.1f} ({ref.listings_max_server})",
            "1",
            ours.listings_per_pair <= 1.0,
        ),
        Row(
            NAME,
            "MCP sessions dialled per (agent, server)",
            f"{ours.dials_per_pair:.1f}",
            f"{ref.dials_per_pair:.1f}",
            "—",
        ),
        Row(
            NAME,
            f"every one of {shape.chats:,} chats offered its tools, after servers ready",
            ms(ours.all_offered_s) if ours.offered == shape.chats else f"{ours.offered:,} offered",
            ms(ref.all_offered_s) if ref.offered == shape.chats else f"{ref.offered:,} offered",
            "≤ 1000 ms",
            ours.all_offered_s <= 1.0,
        ),
        Row(
            NAME,
            "chats offered the tools at the first step after provisioning",
            f"{ours.first_step_share * 100:.0f}%",
            f"{ref.first_step_share * 100:.0f}%",
            "—",
        ),
        Row(
            NAME,
            "peak resident memory growth",
            mb(ours.rss_growth),
            mb(ref.rss_growth),
            "≤ 50 MB",
            ours.rss_growth <= 50 * 2**20,
        ),
        Row(
            NAME,
            "worst event-loop lag (5 ms ticker)",
            ms(ours.worst_lag_s),
            ms(ref.worst_lag_s),
            "≤ 20 ms",
            ours.worst_lag_s <= 0.020,
        ),
        Row(
            NAME,
            "  the same once every primer has started (the barrier's release burst excluded)",
            ms(ours.worst_lag_primed_s),
            ms(ref.worst_lag_primed_s),
            "—",
        ),
        Row(
            NAME,
            "  the same leaving out passes in which the garbage collector ran",
            ms(ours.worst_lag_between_gc_s),
            ms(ref.worst_lag_between_gc_s),
            "—",
        ),
        Row(
            NAME,
            "  longest garbage collection while the chats ran (CPython's, whole heap)",
            ms(ours.longest_gc_s),
            ms(ref.longest_gc_s),
            "—",
        ),
    ]
    layout = (
        "one MCP server per workspace"
        if shape.servers == shape.workspaces
        else f"{shape.servers} MCP servers, each exposed as {shape.workspaces // shape.servers} agents' endpoint"
    )
    section.notes.append(
        f"4: {shape.chats:,} chats over {shape.workspaces} workspaces ({shape.chats_per_workspace} chats each, "
        f"one agent each, {layout}), one shared ChatRuntime and MemoryToolCache per strategy, all primers started "
        f"at once (barrier), servers ready from the start; each strategy in a fresh process "
        f"({ours.wall_s:.1f} s and {ref.wall_s:.1f} s), the MCP servers in another process. Memory is resident set "
        f"size sampled every 5 ms minus the size just before the burst. The barrier releases all {shape.chats:,} "
        "chats in one event-loop iteration; the library admits chats a few dozen per pass "
        "(admissions_per_pass), but each released chat still runs the benchmark's tool up to its first admission. "
        "The second lag row starts once every primer has started; the third leaves out the samples during which "
        "CPython's garbage collector ran (a full collection walks every chat's state at once)."
    )
    for outcome in (ours, ref):
        if outcome.errors:
            section.notes.append(f"4: {outcome.strategy}: failures {dict(outcome.errors)}")
    return section


if __name__ == "__main__":
    sys.exit(main())
