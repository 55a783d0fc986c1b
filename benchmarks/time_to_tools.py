"""Benchmarks 1 and 2: time to tools, and first-step availability.

A "provision" tool binds the chat and calls ``agent_ready()``; the workspace's MCP server becomes ready
(starts listing tools) at a random offset after that. The model keeps working meanwhile (0.5 s steps that
call a cheap built-in tool) and ends the turn at the first step that offers the workspace tools. Every
trial has its own loopback MCP server, chat and runtime; all trials of both strategies run concurrently.

The main scenario is the one the targets are about: the server starts listing silently. A second, smaller
set of rows repeats it with the workspace *announcing* readiness (the backend's change stream fires when
the server comes up, as Coder's watch does when an app turns healthy), which the primed primer can wake on.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass

import anyio

from benchmarks._common import (
    CheckStatus,
    Provision,
    Row,
    Section,
    WorkingModel,
    harness_frozen,
    mean,
    ms,
    pct,
    percentile,
    start_servers,
    stop_servers,
    warm_up,
)
from chat_mcp_primer import Chat, ChatRuntime, PrimerSettings, SystemClock, WorkspaceBinding
from chat_mcp_primer.testing import EventRecorder, InMemoryWorkspaces, WorkspaceMCPServer, echo_tools
from chat_mcp_primer.workspace_mcp import Strategy

NAME = "1-2 time to tools"
SERVER = "ws"
STEP_SECONDS = 0.5
SEED = 20_240_601
STRATEGIES: tuple[Strategy, ...] = ("primed", "reference")


@dataclass(slots=True)
class Trial:
    strategy: Strategy
    index: int
    offset: float
    announced: bool = False  # the backend signals a workspace change when the server becomes ready
    agent_ready_at: float = math.nan
    ready_at: float = math.nan
    cached_at: float = math.nan  # the first complete, non-empty listing (or primer success)
    offered_at: float = math.nan  # the model's respond first saw the workspace tools
    offered_step: int | None = None
    held: float = math.nan  # from agent_ready() to the start of the model's next step
    attempts: int = 0  # primer attempts
    listings: int = 0  # tools/list requests the server answered
    error: str | None = None

    @property
    def to_cache(self) -> float:
        return self.cached_at - self.ready_at

    @property
    def to_model(self) -> float:
        return self.offered_at - self.ready_at


def offsets(trials: int, span: float, seed: int) -> list[float]:
    """``trials`` random offsets in [0, span): one uniform draw in each of ``trials`` equal strata, shuffled."""
    rng = random.Random(seed)
    drawn = [(i + rng.random()) * span / trials for i in range(trials)]
    rng.shuffle(drawn)
    return drawn


async def run_trial(trial: Trial, server: WorkspaceMCPServer, guard_s: float, delay: float) -> None:
    await anyio.sleep(delay)
    clock = SystemClock()
    binding = WorkspaceBinding(f"ws-{trial.strategy}-{trial.index}", build_id="build-1", agent_id="agent-1")
    workspaces = InMemoryWorkspaces()
    workspaces.set_agent(binding.workspace_id, "agent-1", (server.endpoint(SERVER),))
    events = EventRecorder()
    model = WorkingModel(f"{SERVER}__", step_seconds=STEP_SECONDS, now=clock.now)

    agent_is_ready = anyio.Event()

    def server_comes_up_later() -> None:
        trial.agent_ready_at = clock.now()
        trial.ready_at = trial.agent_ready_at + trial.offset
        server.ready_at = trial.ready_at
        agent_is_ready.set()

    async def announce_readiness() -> None:
        await agent_is_ready.wait()
        await anyio.sleep(max(0.0, trial.ready_at - clock.now()))
        workspaces.set_agent(binding.workspace_id, "agent-1", (server.endpoint(SERVER),))

    runtime = ChatRuntime(
        model,
        backend=workspaces,
        tools=[CheckStatus()],
        workspace_tools=lambda turn: [Provision(turn, binding, after=server_comes_up_later)],
        clock=clock,
        primer=PrimerSettings(strategy=trial.strategy),
        on_event=events,
        max_steps=int(guard_s / STEP_SECONDS) + 10,
    )
    text = f"trial {trial.strategy} {trial.index}: set up a workspace and use its tools"
    try:
        with anyio.fail_after(guard_s):
            async with runtime, anyio.create_task_group() as group:
                if trial.announced:
                    group.start_soon(announce_readiness)
                await runtime.run_turn(Chat(id=f"chat-{trial.strategy}-{trial.index}", owner="bench"), text)
                group.cancel_scope.cancel()
    except TimeoutError:
        trial.error = "timed out"
    except Exception as exc:
        trial.error = f"{type(exc).__name__}: {exc}"
    listed = [e.at for e in events.named("discovery.server_listed") if int(e.fields.get("tools", 0)) > 0]
    succeeded = [e.at for e in events.named("primer.succeeded")]
    trial.cached_at = min([*listed, *succeeded], default=math.nan)
    trial.attempts = len(events.named("primer.attempt"))
    trial.listings = server.list_calls
    offered = model.offered.get(text)
    if offered is not None:
        trial.offered_at = offered.at
        trial.offered_step = offered.step
    starts = model.step_starts.get(text, [])
    if len(starts) > 1:
        trial.held = starts[1] - trial.agent_ready_at


async def measure(
    trials_per_strategy: int, announced_trials: int, span: float, stagger: float
) -> tuple[list[Trial], float]:
    drawn = offsets(trials_per_strategy, span, SEED)
    trials = [Trial(s, i, offset) for s in STRATEGIES for i, offset in enumerate(drawn)]
    trials += [
        Trial(s, trials_per_strategy + i, offset, announced=True)
        for s in STRATEGIES
        for i, offset in enumerate(offsets(announced_trials, span, SEED + 1))
    ]
    servers = [
        WorkspaceMCPServer(echo_tools("search", "run_tests"), name=SERVER, clock=SystemClock(), ready_at=math.inf)
        for _ in trials
    ]
    start_servers(servers)
    guard_s = span + 30.0
    await warm_up()
    started = time.perf_counter()
    try:
        with harness_frozen():
            async with anyio.create_task_group() as group:
                for trial, server in zip(trials, servers, strict=True):
                    # Trial i of every strategy starts at the same moment; starts are spread over ``stagger``
                    # so that trials do not all dial at once: a dial costs about 50 ms of CPU here (client and
                    # server share the process), so a burst of them would measure the trials' own contention.
                    delay = stagger * trial.index / (len(trials) // len(STRATEGIES))
                    group.start_soon(run_trial, trial, server, guard_s, delay)
        wall = time.perf_counter() - started
    finally:
        stop_servers(servers)
    return trials, wall


def summarise(
    trials: list[Trial], trials_per_strategy: int, announced_trials: int, span: float, stagger: float, wall: float
) -> Section:
    def pick(strategy: Strategy, announced: bool) -> list[Trial]:
        return [t for t in trials if t.strategy == strategy and t.announced == announced]

    def values(strategy: Strategy, announced: bool, metric: str) -> list[float]:
        got = [float(getattr(t, metric)) for t in pick(strategy, announced)]
        if metric.startswith("to_"):  # a trial whose tools never came counts as infinitely late
            return [math.inf if math.isnan(v) else v for v in got]
        return [v for v in got if not math.isnan(v)]

    section = Section()
    for label, metric in (("tools in cache", "to_cache"), ("tools offered to the model", "to_model")):
        for q, limit in ((50, 0.100), (95, 0.300)):
            ours = percentile(values("primed", False, metric), q)
            ref = percentile(values("reference", False, metric), q)
            section.rows.append(
                Row(NAME, f"p{q} {label} - server ready", ms(ours), ms(ref), f"≤ {ms(limit)}", ours <= limit)
            )
    for label, metric in (
        ("primer attempts per trial (mean)", "attempts"),
        ("tools/list calls per trial (mean)", "listings"),
    ):
        ours = mean(values("primed", False, metric))
        ref = mean(values("reference", False, metric))
        section.rows.append(Row(NAME, label, f"{ours:.1f}", f"{ref:.1f}", "—"))
    share = {s: sum(1 for t in pick(s, False) if t.offered_step == 1) / max(1, len(pick(s, False))) for s in STRATEGIES}
    section.rows.append(
        Row(
            NAME,
            "first step after provisioning offers the workspace tools",
            pct(share["primed"]),
            pct(share["reference"]),
            "100%",
            share["primed"] >= 1.0,
        )
    )
    held = {s: percentile(values(s, False, "held"), 95) for s in STRATEGIES}
    section.rows.append(
        Row(NAME, "p95 agent_ready() → next model step starts", ms(held["primed"]), ms(held["reference"]), "—")
    )
    if announced_trials:
        for q in (50, 95):
            ours = percentile(values("primed", True, "to_model"), q)
            ref = percentile(values("reference", True, "to_model"), q)
            section.rows.append(Row(NAME, f"  with readiness announced: p{q} offered - ready", ms(ours), ms(ref), "—"))

    failed = [t for t in trials if t.error is not None or math.isnan(t.to_model)]
    section.notes.append(
        f"1-2: {trials_per_strategy} trials per strategy, server ready at a stratified random offset in "
        f"[0, {span:g}) s after agent_ready() (seed {SEED}, the same offsets for both strategies); model steps take "
        f"{STEP_SECONDS} s; one server, chat and runtime per trial, trial starts spread over {stagger:g} s. The "
        f"'readiness announced' rows are {announced_trials} more trials per strategy in which the backend's change "
        "stream fires the moment the server comes up. "
        f"All {len(trials)} trials ran concurrently in {wall:.1f} s."
    )
    if failed:
        summary = ", ".join(f"{t.strategy}#{t.index}: {t.error or 'tools never offered'}" for t in failed[:5])
        section.notes.append(f"1-2: {len(failed)} trial(s) incomplete ({summary}).")
    return section


def run(quick: bool) -> Section:
    trials_per_strategy, announced_trials, span, stagger = (6, 3, 3.0, 1.5) if quick else (20, 8, 10.0, 6.0)
    trials, wall = anyio.run(measure, trials_per_strategy, announced_trials, span, stagger)
    return summarise(trials, trials_per_strategy, announced_trials, span, stagger, wall)
