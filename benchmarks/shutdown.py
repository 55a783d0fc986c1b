"""Benchmark 5: shutdown. `ChatRuntime.aclose()` while many primers are in flight.

Every chat provisions a workspace (ten chats share each one, as in the fan-out) whose MCP server never lists
a tool, so each chat's primer keeps retrying (and, with the primed strategy, the next step waits for it).
Once every primer has made its first attempt (the sessions are open), ``aclose()`` is timed; then the tasks,
sessions and connections left behind are counted.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from dataclasses import dataclass

import anyio

from benchmarks._common import (
    GUARD_S,
    CheckStatus,
    GcPauses,
    Row,
    Section,
    WorkingModel,
    harness_frozen,
    ms,
    warm_up,
)
from benchmarks._server_farm import ServerFarm
from chat_mcp_primer import (
    Chat,
    ChatRuntime,
    Event,
    PrimerSettings,
    RuntimeClosedError,
    SystemClock,
    Tool,
    TurnWorkspace,
    WorkspaceBinding,
)
from chat_mcp_primer.runtime import WorkspacesFrom
from chat_mcp_primer.testing import InMemoryWorkspaces, ProvisionTool
from chat_mcp_primer.workspace import McpEndpoint
from chat_mcp_primer.workspace_mcp import Strategy

NAME = "5 shutdown"
ENDPOINT = "tools"
STEP_SECONDS = 0.5
SETTLE_S = 0.25
HARNESS = "bench:"  # name prefix of the benchmark's own tasks, left out of the count
ENDED = ("primer.succeeded", "primer.gave_up", "primer.confirmed_empty", "primer.cancelled")


@dataclass(slots=True)
class Outcome:
    strategy: Strategy
    in_flight: int = 0  # primers running when aclose() was called
    sessions_before: int = 0  # open in the runtime's session pool
    dialled: int = 0  # session.dialing events
    closed_events: int = 0  # session.closed events once everything settled
    connections_before: int = 0
    aclose_s: float = math.nan
    aclose_gc_s: float = math.nan  # of aclose_s, spent in CPython's garbage collector
    unwound_s: float = math.nan  # from aclose() to the last primer.cancelled event: the turns unwinding
    tasks_left: int = -1  # the library's tasks still alive right after aclose() returned
    sessions_left: int = -1
    connections_left: int = -1  # after SETTLE_S
    idle_after_s: float = math.nan  # when the servers saw their last connection close (bounded poll)
    turn_errors: int = 0  # turns that ended other than with RuntimeClosedError
    setup_s: float = math.nan


async def run_strategy(chats: int, chats_per_workspace: int, strategy: Strategy, farm: ServerFarm) -> Outcome:
    outcome = Outcome(strategy)
    clock = SystemClock()
    workspaces = InMemoryWorkspaces()
    bindings: dict[str, WorkspaceBinding] = {}
    for w in range(chats // chats_per_workspace):
        url = farm.urls[w % len(farm.urls)]
        workspaces.set_agent(f"ws-{w}", f"agent-{w}", (McpEndpoint(server=ENDPOINT, url=url),))
        for c in range(chats_per_workspace):
            bindings[f"chat-{w}-{c}"] = WorkspaceBinding(f"ws-{w}", build_id=f"build-{w}", agent_id=f"agent-{w}")

    names: Counter[str] = Counter()
    attempted: set[str] = set()
    last_cancelled = [math.nan]

    def count(event: Event) -> None:
        names[event.name] += 1
        if event.name == "primer.attempt":
            attempted.add(str(event.fields.get("chat_id")))
        elif event.name == "primer.cancelled":
            last_cancelled[0] = event.at

    turns: list[TurnWorkspace] = []

    def provisioning(turn: TurnWorkspace) -> list[Tool]:
        turns.append(turn)
        return [ProvisionTool(turn, bindings[turn.chat_id])]

    def pool_open() -> int:
        # The turns of one runtime share its session pool, so every turn reports the same pool.
        return max((turn.open_sessions for turn in turns), default=0)

    runtime = ChatRuntime(
        WorkingModel(f"{ENDPOINT}__", step_seconds=STEP_SECONDS, now=clock.now),
        workspaces=WorkspacesFrom(workspaces, tools=provisioning),
        tools=[CheckStatus()],
        clock=clock,
        primer=PrimerSettings(strategy=strategy),
        on_event=count,
        max_steps=int(GUARD_S / STEP_SECONDS),
    )

    async def one_chat(chat_id: str) -> None:
        try:
            await runtime.run_turn(Chat(id=chat_id, owner="bench"), chat_id)
        except RuntimeClosedError:
            return
        except Exception:
            outcome.turn_errors += 1
        else:
            outcome.turn_errors += 1  # no turn should end on its own: its tools never come

    started = time.perf_counter()
    # The runtime is entered inside the group, so its own scope nests in it; it is left by the aclose() being
    # measured (the second aclose(), from leaving the block, has nothing left to do).
    async with anyio.create_task_group() as group, runtime:
        baseline = set(asyncio.all_tasks())
        for chat_id in bindings:
            group.start_soon(one_chat, chat_id, name=f"{HARNESS}{chat_id}")
        with anyio.move_on_after(GUARD_S):
            for _ in range(int(GUARD_S / 0.05)):
                if len(attempted) == chats:
                    break
                await anyio.sleep(0.05)
        outcome.setup_s = time.perf_counter() - started
        ended = sum(names[name] for name in ENDED)
        outcome.in_flight = names["primer.started"] - ended
        outcome.sessions_before = pool_open()
        outcome.dialled = names["session.dialing"]
        outcome.connections_before = farm.open_connections()

        collections = GcPauses()
        collections.install()
        began, began_on_clock = time.perf_counter(), clock.now()
        try:
            await runtime.aclose()
        finally:
            closed = time.perf_counter()
            collections.uninstall()
        outcome.aclose_s = closed - began
        outcome.aclose_gc_s = collections.within(began, closed)
        outcome.unwound_s = last_cancelled[0] - began_on_clock

        left = [
            task
            for task in asyncio.all_tasks()
            if task not in baseline and not task.done() and not task.get_name().startswith(HARNESS)
        ]
        outcome.tasks_left = len(left)
        outcome.sessions_left = pool_open()
    for _ in range(int(5.0 / 0.01)):
        if farm.open_connections() == 0:
            outcome.idle_after_s = time.perf_counter() - closed
            break
        await anyio.sleep(0.01)
    await anyio.sleep(max(0.0, closed + SETTLE_S - time.perf_counter()))
    outcome.closed_events = names["session.closed"]
    outcome.connections_left = farm.open_connections()
    return outcome


async def measure(chats: int, chats_per_workspace: int, servers_n: int) -> list[Outcome]:
    with ServerFarm(servers_n, ["never"], ready=False) as farm:
        await warm_up()
        outcomes = []
        for strategy in ("primed", "reference"):
            with harness_frozen():
                outcomes.append(await run_strategy(chats, chats_per_workspace, strategy, farm))
        return outcomes


def run(quick: bool) -> Section:
    chats, per_workspace, servers_n = (100, 10, 10) if quick else (1_000, 10, 100)
    ours, ref = anyio.run(measure, chats, per_workspace, servers_n)
    section = Section()
    section.rows += [
        Row(
            NAME,
            f"aclose() with primers in flight (of {chats:,})",
            f"{ms(ours.aclose_s)} ({ours.in_flight:,})",
            f"{ms(ref.aclose_s)} ({ref.in_flight:,})",
            "≤ 200 ms",
            ours.aclose_s <= 0.200 and ours.in_flight == chats,
        ),
        Row(
            NAME,
            "  of which CPython's garbage collector",
            ms(ours.aclose_gc_s),
            ms(ref.aclose_gc_s),
            "—",
        ),
        Row(
            NAME,
            "library tasks left right after aclose()",
            str(ours.tasks_left),
            str(ref.tasks_left),
            "0",
            ours.tasks_left == 0,
        ),
        Row(
            NAME,
            "MCP sessions open in the pool before → left after aclose()",
            f"{ours.sessions_before:,} → {ours.sessions_left}",
            f"{ref.sessions_before:,} → {ref.sessions_left}",
            "0 left",
            ours.sessions_left == 0,
        ),
        Row(
            NAME,
            "sessions that ended with a session.closed event (of dialled)",
            f"{ours.closed_events:,} of {ours.dialled:,}",
            f"{ref.closed_events:,} of {ref.dialled:,}",
            "—",
        ),
        Row(
            NAME,
            f"server connections open before → left {SETTLE_S * 1000:.0f} ms after",
            f"{ours.connections_before:,} → {ours.connections_left}",
            f"{ref.connections_before:,} → {ref.connections_left}",
            "0 left",
            ours.connections_left == 0,
        ),
    ]
    section.notes.append(
        f"5: {chats:,} chats over {chats // per_workspace} workspaces ({per_workspace} chats each, one agent each, "
        f"{servers_n} MCP servers) that never list a tool, one runtime per strategy; "
        f"aclose() called once every primer had made its first attempt (after {ours.setup_s:.1f} s primed, "
        f"{ref.setup_s:.1f} s reference). Of aclose(), the turns' unwinding (until the last primer.cancelled) took "
        f"{ms(ours.unwound_s)} / {ms(ref.unwound_s)} (primed / reference), the rest is closing the session pool. "
        "Servers saw their last connection close "
        f"{ms(ours.idle_after_s)} / {ms(ref.idle_after_s)} after aclose() returned (primed / reference)."
    )
    for outcome in (ours, ref):
        if outcome.in_flight < chats:
            section.notes.append(f"5: {outcome.strategy}: only {outcome.in_flight} primers were in flight at aclose().")
        if outcome.turn_errors:
            section.notes.append(f"5: {outcome.strategy}: {outcome.turn_errors} turn(s) did not end by aclose().")
    return section
