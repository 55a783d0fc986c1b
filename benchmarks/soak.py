"""Soak: hundreds of chat turns through `ChatRuntime` with a random fault in most of them, then a check that
nothing grew: MCP sessions, connections, file descriptors, tasks, threads and memory.

.venv/bin/python -m benchmarks.soak                     # 500 turns (make soak): a few minutes on 2 cores
.venv/bin/python -m benchmarks.soak --turns 2000 --seed 7
.venv/bin/python -m benchmarks.soak --json              # the result as JSON, for machines

Every turn is real: the model (`ScriptedModel`) calls a Coder workspace tool (`CoderWorkspaces`) against
`FakeCoder` on loopback, then the workspace's MCP tool once it is offered; MCP goes through Coder's app proxy to
a real MCP server on its own loopback port. Time is a `MockClock` that jumps whenever everything waits, so
builds, retries and the primer's budget cost no real seconds. The exit status is 1 if a turn failed (raised
or ran past its timeout) or a measure grew beyond its tolerance (see `benchmarks/_soak_measure.py`).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import random
import re
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Sequence, Sized
from dataclasses import dataclass, field
from typing import Any

import anyio
from rich.console import Console
from rich.table import Table

from benchmarks import _soak_measure as measure
from benchmarks._common import percentile
from benchmarks._soak_world import FAULT_KINDS, SEARCH, Injection, SoakChat, World
from chat_mcp_primer import Chat, ChatRuntime, Event, ModelRequest, ModelResponse, PrimerSettings, ToolCall, TurnResult
from chat_mcp_primer.clock import tags as clock_tags
from chat_mcp_primer.model import Message, Role, ToolResult
from chat_mcp_primer.runtime import WorkspacesFrom
from chat_mcp_primer.testing import MockClock, ScriptedModel, call
from chat_mcp_primer.tools import CoderWorkspaces
from chat_mcp_primer.workspace.coder import CoderBackend, CoderClient, ReadinessSettings
from chat_mcp_primer.workspace_mcp import ListingLimits, TurnWorkspace

# The README's figure: enough turns that every fault kind comes up dozens of times.
DEFAULT_TURNS = 500
DEFAULT_SEED = 20_240_601
# A handful of chats, each with a workspace and an MCP server of its own, so a chat's faults land beside
# healthy chats sharing the runtime; the state a runtime keeps is bounded by them.
CHATS = 4
# Turns of every fault kind run before the first reading, so one-off costs (lazy imports, first connections,
# the interpreter's caches) on every path are paid before the start is measured.
WARM_UP_ROUNDS = 1
# Real seconds one turn may take. The slowest fault turn takes about a second on 2 cores (the polls of a
# stalled build); a turn still running after this long has hung, and counts as failed.
TURN_TIMEOUT_S = 60.0
# A wait bounded by a timeout (real I/O) that has not moved for this many real seconds is hung on purpose
# (a server that never answers a listing); the harness then moves the fake clock to its deadline, as real
# time would. Loopback I/O answers in milliseconds, so a slow-but-live one is rarely taken for hung (and
# each such break is counted, by fault kind).
STALL_GRACE_S = 0.5
STALL_POLL_S = 0.05
# The longest timeout a hang can run into: one listing (ListingLimits.discovery_timeout) and a second.
STALL_MAX_JUMP_S = 36.0
# Steps the model's script has: the first call, a create after a deleted workspace, the search, the answer,
# and slack for a step cap hit (which would show up as a failed turn).
MODEL_STEPS = 8
# The library's settings, small where the soak would otherwise pay in real requests (it counts what is left
# behind, not latency): a paginated listing of the soak's one-page servers that runs past 10 pages is already
# a cursor loop (100 by default); a step held for the primer looks for the tools itself every second, not
# every 0.25 s (a quarter of the listings while a server is down); a stalled build is given up on after 2
# minutes of fake time, 60 polls (10 minutes by default, 300 polls).
PRIMER = PrimerSettings(prepare_poll_interval=1.0)
LISTING = ListingLimits(max_list_pages=10)
READINESS = ReadinessSettings(build_timeout=120.0)


class TurnModels:
    """The runtime's model: plays the current turn's script. A fresh `ScriptedModel` each turn, so the
    record of requests it keeps does not grow with the soak."""

    def __init__(self) -> None:
        self.current = ScriptedModel([])

    async def respond(self, request: ModelRequest) -> ModelResponse:
        return await self.current.respond(request)


def script(first: ToolCall, create: ToolCall, before_first: Callable[[], None] | None) -> ScriptedModel:
    """A model that makes ``first`` call, creates the workspace again if told it was deleted, calls the
    workspace's search tool once it is offered, and answers."""

    def respond(request: ModelRequest) -> ModelResponse:
        if request.step == 0:
            if before_first is not None:
                before_first()
            return ModelResponse(text="Checking the workspace.", tool_calls=(first,))
        results = [message for message in request.messages if message.role is Role.TOOL]
        called = {message.tool_name for message in results}
        told_to_create = results and results[-1].result is not None and "create_workspace" in results[-1].result.text
        if told_to_create and "create_workspace" not in called:
            return ModelResponse(text="Making a new one.", tool_calls=(create,))
        if SEARCH in request.tool_names and SEARCH not in called:
            return ModelResponse(text="Searching.", tool_calls=(call(SEARCH, '{"query": "soak"}'),))
        return ModelResponse(text="Done.")

    return ScriptedModel([respond] * MODEL_STEPS)


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_NUMBER = re.compile(r"\d+(\.\d+)?")
# Outcome labels are cut to this length so that one table column holds them.
OUTCOME_CHARS = 72


def outcome(message: Message) -> str:
    """What a tool result told the model, ids and numbers blanked so that results of a kind count together."""
    result = message.result or ToolResult("")
    try:
        payload: Any = json.loads(result.text)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        if "error" in payload:
            text = f"error: {payload['error']}"
        elif "agent_status" in payload:
            text = f"agent {payload['agent_status']}"
        elif "startup_scripts" in payload:
            text = f"{payload['startup_scripts']} ({payload.get('lifecycle_state', '?')})"
        else:
            text = "ok"
    else:
        text = f"error: {result.text}" if result.is_error else "ok"
    text = _NUMBER.sub("N", _UUID.sub("<id>", text))
    return f"{message.tool_name}: {text}"[:OUTCOME_CHARS]


@dataclass(slots=True)
class SoakResult:
    turns: int
    seed: int
    completed: int = 0
    failures: list[str] = field(default_factory=list)
    injected: Counter[str] = field(default_factory=Counter)  # fault kind -> turns
    offered: Counter[str] = field(default_factory=Counter)  # fault kind -> turns whose model was offered the tools
    outcomes: Counter[str] = field(default_factory=Counter)  # tool: what the model got back -> count
    stalls_broken: Counter[str] = field(default_factory=Counter)  # fault kind -> hung waits cut short
    builds_canceled: int = 0  # builds the harness canceled after a turn (the tools leave stalled builds running)
    events: Counter[str] = field(default_factory=Counter)
    turn_seconds: list[float] = field(default_factory=list)
    start: measure.Reading | None = None
    end: measure.Reading | None = None
    grew_most: list[str] = field(default_factory=list)  # allocation sites that grew most, start to end
    elapsed_s: float = math.nan
    fake_elapsed_s: float = math.nan

    def growth(self) -> list[tuple[str, int, int, int, int | None, bool]]:
        """(measure, start, end, growth, tolerance, within) for every measure."""
        assert self.start is not None
        assert self.end is not None
        start, end = self.start.as_dict(), self.end.as_dict()
        rows = []
        for name, tolerance, _ in measure.MEASURES:
            grew = end[name] - start[name]
            rows.append((name, start[name], end[name], grew, tolerance, tolerance is None or grew <= tolerance))
        return rows

    @property
    def passed(self) -> bool:
        return not self.failures and self.completed == self.turns and all(row[5] for row in self.growth())

    def as_json(self) -> dict[str, Any]:
        return {
            "turns": self.turns,
            "seed": self.seed,
            "completed": self.completed,
            "failures": self.failures,
            "passed": self.passed,
            "faults_injected": dict(self.injected),
            "tools_offered_by_fault": dict(self.offered),
            "results_seen": dict(self.outcomes),
            "stalls_broken_by_fault": dict(self.stalls_broken),
            "builds_canceled_after_turns": self.builds_canceled,
            "events": dict(self.events),
            "turn_seconds": {
                "p50": percentile(self.turn_seconds, 50),
                "p99": percentile(self.turn_seconds, 99),
                "max": max(self.turn_seconds, default=math.nan),
            },
            "measures": [
                {"measure": name, "start": a, "end": b, "growth": g, "tolerance": t, "within": ok}
                for name, a, b, g, t, ok in self.growth()
            ],
            "grew_most": self.grew_most,
            "elapsed_s": self.elapsed_s,
            "fake_elapsed_s": self.fake_elapsed_s,
        }


class Soak:
    """One soak run: the world, the shared runtime, and the turn loop."""

    def __init__(self, world: World, result: SoakResult) -> None:
        self.world = world
        self.result = result
        self.clock = world.clock
        self.models = TurnModels()
        self.kind = "none"  # the fault of the turn running now, for the stall breaker's count
        self.counting = False
        self._last_turn: TurnWorkspace | None = None

    def runtime(self, backend: CoderBackend) -> ChatRuntime:
        workspaces = CoderWorkspaces(backend)

        def turn_tools(turn: TurnWorkspace) -> Sequence[Any]:
            self._last_turn = turn  # only the latest: its pool count is the runtime's
            return workspaces.provisioning_tools(turn)

        return ChatRuntime(
            self.models,
            workspaces=WorkspacesFrom(backend, tools=turn_tools),
            clock=self.clock,
            primer=PRIMER,
            on_event=self._count,
        )

    def _count(self, event: Event) -> None:
        if self.counting:
            self.result.events[event.name] += 1

    def pool_sessions(self) -> int:
        return self._last_turn.open_sessions if self._last_turn is not None else 0

    async def turn(self, runtime: ChatRuntime, chat: SoakChat, kind: str, rng: random.Random) -> None:
        """Run one turn of ``chat`` with fault ``kind``; record it, then undo the fault."""
        world, result = self.world, self.result
        self.kind = kind
        injection = world.inject(kind, chat, rng)
        if self.counting:
            result.injected[kind] += 1
        began = time.perf_counter()
        try:
            turn = await self._play(runtime, chat, injection)
        except Exception as exc:  # a turn must never raise: that is the failure the soak looks for
            if self.counting:
                result.failures.append(f"turn with {kind} on {chat.chat.id}: {type(exc).__name__}: {exc}")
            raise_if_harness_bug(exc)
        else:
            chat.chat = Chat(id=chat.chat.id, owner=chat.chat.owner, workspace=turn.chat.workspace)
            if self.counting:
                result.completed += 1
                result.offered[kind] += any(SEARCH in names for names in self.models.current.offered)
                for message in turn.added:
                    if message.role is Role.TOOL:
                        result.outcomes[outcome(message)] += 1
        finally:
            if self.counting:
                result.turn_seconds.append(time.perf_counter() - began)
            world.undo(chat)
            canceled = await world.cancel_active_build(chat)
            result.builds_canceled += canceled and self.counting

    async def _play(self, runtime: ChatRuntime, chat: SoakChat, injection: Injection) -> TurnResult:
        first = call(injection.first_call, json.dumps(injection.arguments))
        create = call("create_workspace", self.world.first_call_arguments(chat))
        revoke = None
        if injection.revoke is not None:
            token = injection.revoke

            def revoke() -> None:
                self.world.fake.revoke_token(token)

        self.models.current = script(first, create, revoke)
        async with anyio.create_task_group() as during:
            if injection.during is not None:
                during.start_soon(injection.during)
            try:
                with anyio.fail_after(TURN_TIMEOUT_S):
                    if injection.revoke is None:
                        return await runtime.run_turn(chat.chat, "Keep my workspace going and search it.")
                    # A token of its own, revoked mid-turn: the turn runs on a runtime of its own with it.
                    return await self._with_token(injection.revoke, chat)
            finally:
                during.cancel_scope.cancel()
        raise AssertionError("unreachable")

    async def _with_token(self, token: str, chat: SoakChat) -> TurnResult:
        coder = self.world.coder
        assert coder is not None
        async with (
            CoderClient(coder.url, token, clock=self.clock) as client,
            self.runtime(CoderBackend(client, readiness=READINESS)) as runtime,
        ):
            return await runtime.run_turn(chat.chat, "Keep my workspace going and search it.")

    async def break_stalls(self) -> None:
        """Move the fake clock past a timeout-bounded wait that real time has not moved (a hang)."""
        last: tuple[float, int] | None = None
        still = 0.0
        while True:
            await anyio.sleep(STALL_POLL_S)
            now = (self.clock.now(), self.clock.sleeps)
            hung = any(clock_tags.TIMEOUT in tags for tags in self.clock.pending)
            still = still + STALL_POLL_S if now == last and hung else 0.0
            last = now
            if still < STALL_GRACE_S:
                continue
            if self.counting:
                self.result.stalls_broken[self.kind] += 1
            waiting = sum(clock_tags.TIMEOUT in tags for tags in self.clock.pending)
            began = self.clock.now()
            while (
                self.clock.peek() is not None
                and sum(clock_tags.TIMEOUT in tags for tags in self.clock.pending) >= waiting
                and self.clock.now() - began < STALL_MAX_JUMP_S
            ):
                await self.clock.advance_next()
            still, last = 0.0, None


def raise_if_harness_bug(exc: Exception) -> None:
    """A turn's failure is recorded and the soak goes on; a bug of the soak itself stops it."""
    if isinstance(exc, AssertionError | NameError | AttributeError | TypeError):
        raise exc


async def soak(
    turns: int = DEFAULT_TURNS, seed: int = DEFAULT_SEED, *, trace: bool = True, warm_up_rounds: int = WARM_UP_ROUNDS
) -> SoakResult:
    """Run the soak and return its result (the entry point the smoke test calls). ``trace`` traces memory
    allocations (slower); ``warm_up_rounds`` of every fault kind run before the start is measured."""
    result = SoakResult(turns=turns, seed=seed)
    rng = random.Random(seed)
    clock = MockClock()
    started = time.perf_counter()
    if trace:
        tracemalloc.start(measure.TRACE_FRAMES)
    try:
        world = World(clock, CHATS)
        with world.running():
            async with world, clock.autojump():
                await _run(Soak(world, result), rng, warm_up_rounds)
    finally:
        if trace:
            tracemalloc.stop()
    result.elapsed_s = time.perf_counter() - started
    return result


async def _run(run: Soak, rng: random.Random, warm_up_rounds: int) -> None:
    world, result, clock = run.world, run.result, run.clock
    coder = world.coder
    assert coder is not None
    async with (
        CoderClient(coder.url, coder.token, clock=clock) as client,
        run.runtime(CoderBackend(client, readiness=READINESS)) as runtime,
        anyio.create_task_group() as harness,
    ):
        harness.start_soon(run.break_stalls)
        for _ in range(warm_up_rounds):
            for kind in FAULT_KINDS:
                await run.turn(runtime, rng.choice(world.chats), kind, rng)
        result.start, first = await _reading(run, runtime, world)
        run.counting = True
        fake_began = clock.now()
        for _ in range(result.turns):
            chat = rng.choice(world.chats)
            await run.turn(runtime, chat, rng.choice(FAULT_KINDS), rng)
        result.fake_elapsed_s = clock.now() - fake_began
        run.counting = False
        result.end, last = await _reading(run, runtime, world)
        result.grew_most = measure.top_growth(first, last)
        harness.cancel_scope.cancel()


async def _reading(
    run: Soak, runtime: ChatRuntime, world: World
) -> tuple[measure.Reading, tracemalloc.Snapshot | None]:
    """Every chat runs a fault-free turn (the same state at the start and the end), then the measures."""
    for chat in world.chats:
        await run.turn(runtime, chat, "none", random.Random(0))
    coder = world.coder
    assert coder is not None
    return await measure.read(
        lambda: sum(server.open_sessions for server in world.servers),
        run.pool_sessions,
        lambda: len(runtime.cache) if isinstance(runtime.cache, Sized) else 0,
        lambda: coder.open_connections + sum(server.open_connections for server in world.servers),
    )


# -- report ----------------------------------------------------------------------------------------


def _size(value: int) -> str:
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value >= 1024 * 1024:
        return f"{sign}{value / 1024 / 1024:.1f} MiB"
    return f"{sign}{value / 1024:.0f} KiB"


def render(result: SoakResult, command: str) -> list[Table]:
    memory = {"traced_library", "traced_other", "traced_harness", "traced_total", "rss"}

    def shown(name: str, value: int | None) -> str:
        if value is None:
            return "—"
        return _size(value) if name in memory else f"{value:,}"

    measures = Table(title=f"soak: {result.completed:,} of {result.turns:,} turns completed (seed {result.seed})")
    for column, justify in (("measure", "left"), ("start", "right"), ("end", "right"), ("growth", "right")):
        measures.add_column(column, justify=justify)  # type: ignore[arg-type]
    measures.add_column("tolerance", justify="right")
    measures.add_column("within", justify="center")
    described = {name: text for name, _, text in measure.MEASURES}
    for name, start, end, grew, tolerance, within in result.growth():
        measures.add_row(
            described[name],
            shown(name, start),
            shown(name, end),
            shown(name, grew),
            shown(name, tolerance),
            "yes" if within else "NO",
        )
    machine = f"{platform.python_implementation()} {platform.python_version()}, {sys.platform}"
    measures.caption = "\n".join(
        [
            f"{len(result.failures)} turn(s) failed; turn p50 / p99 / max "
            f"{percentile(result.turn_seconds, 50) * 1000:.0f} / {percentile(result.turn_seconds, 99) * 1000:.0f} / "
            f"{max(result.turn_seconds, default=math.nan) * 1000:.0f} ms real; {result.fake_elapsed_s / 3600:.1f} h "
            f"of fake time in {result.elapsed_s:.0f} s. Builds canceled after turns: {result.builds_canceled}.",
            f"Measured on {machine}; all traffic on 127.0.0.1.",
            f"Reproduce: {command}",
        ]
    )
    measures.caption_justify = "left"

    faults = Table(title="faults injected, and turns whose model was offered the workspace tools")
    faults.add_column("fault")
    faults.add_column("turns", justify="right")
    faults.add_column("tools offered", justify="right")
    faults.add_column("hangs cut short", justify="right")
    for kind in FAULT_KINDS:
        faults.add_row(
            kind,
            str(result.injected[kind]),
            str(result.offered[kind]),
            str(result.stalls_broken[kind] or ""),
        )

    outcomes = Table(title="what the model got back (tool: result)")
    outcomes.add_column("result")
    outcomes.add_column("count", justify="right")
    for label, count in sorted(result.outcomes.items(), key=lambda item: (-item[1], item[0])):
        outcomes.add_row(label, str(count))
    return [faults, outcomes, measures]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=DEFAULT_TURNS, help=f"turns to run (default {DEFAULT_TURNS})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the fault sequence")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of tables")
    args = parser.parse_args(argv)
    if args.turns < 1:
        parser.error("--turns must be at least 1")
    # The SDK and uvicorn log connection teardown at warning level; every fault makes some. The tables count.
    logging.basicConfig(level=logging.CRITICAL)
    result = anyio.run(soak, args.turns, args.seed)
    flags = (f" --turns {args.turns}" if args.turns != DEFAULT_TURNS else "") + (
        f" --seed {args.seed}" if args.seed != DEFAULT_SEED else ""
    )
    if args.json:
        print(json.dumps(result.as_json(), indent=2))
    else:
        console = Console(width=150)
        command = f".venv/bin/python -m benchmarks.soak{flags}" + ("" if flags else "  (or: make soak)")
        for table in render(result, command):
            console.print(table)
        for failure in result.failures:
            console.print(f"[red]failed:[/red] {failure}")
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
