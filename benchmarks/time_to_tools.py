"""Benchmarks 1 and 2: time to tools, and first-step availability.

A "provision" tool binds the chat and calls ``agent_ready()``; the workspace's MCP server becomes ready at a
random offset after that. The model keeps working meanwhile (0.5 s steps that call a cheap built-in tool)
and ends the turn at the first step that offers the workspace tools. Every trial has its own loopback MCP
server, chat and runtime; the trials of one scenario, both strategies, run concurrently.

How a server becomes ready decides what can notice it, so there are three scenarios:

- *starts listening*: the server process comes up at the offset (connections are refused until then), as
  a server launched by a workspace's startup script does;
- *announced*: the server listens all along and starts listing tools at the offset, and the backend's change
  stream fires then (as Coder's watch does when the app's health check turns healthy);
- *silent*: the same with no signal at all, not even ``tools/list_changed``: only retries find the tools.

A fourth scenario, *always empty*, counts what looking costs: the server answers every listing with no tools,
ever, and the model gives up after the primer's whole budget.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from enum import StrEnum

import anyio

from benchmarks._common import (
    CheckStatus,
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
from chat_mcp_primer.runtime import WorkspacesFrom
from chat_mcp_primer.testing import (
    EventRecorder,
    InMemoryWorkspaces,
    ProvisionTool,
    WorkspaceMCPServer,
    echo_tools,
    free_port,
)
from chat_mcp_primer.workspace import McpEndpoint
from chat_mcp_primer.workspace_mcp import Strategy

NAME = "1-2 time to tools"
SERVER = "ws"
STEP_SECONDS = 0.5
SEED = 20_240_601
# The targets for the time from server ready to tools offered.
P50_TARGET_S = 0.100
P95_TARGET_S = 0.300
STRATEGIES: tuple[Strategy, ...] = ("primed", "reference")
# Always empty: a trial lasts the primer's whole budget (30 s), which is what the reference's "16 listings"
# are counted over; the first prepare_wait (15 s) of it is the primed strategy's held step.
EMPTY_TRIAL_S = PrimerSettings().max_wait
HELD_S = PrimerSettings().prepare_wait


class Scenario(StrEnum):
    LISTENS = "starts listening"
    ANNOUNCED = "announced"
    SILENT = "silent"
    EMPTY = "always empty"


@dataclass(slots=True)
class Trial:
    strategy: Strategy
    index: int
    offset: float
    scenario: Scenario
    agent_ready_at: float = math.nan
    ready_at: float = math.nan
    cached_at: float = math.nan  # the first complete, non-empty listing (or primer success)
    offered_at: float = math.nan  # the model's respond first saw the workspace tools
    offered_step: int | None = None
    held: float = math.nan  # from agent_ready() to the start of the model's next step
    attempts: int = 0  # primer attempts
    listings: int = 0  # tools/list requests the server answered
    listings_held: float = math.nan  # of those, the ones answered within HELD_S of agent_ready()
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


def endpoint_of(trial: Trial, server: WorkspaceMCPServer) -> McpEndpoint:
    if trial.scenario is Scenario.LISTENS:  # not started yet: where it will listen
        return McpEndpoint(server=SERVER, url=f"http://127.0.0.1:{server.port}/mcp")
    return server.endpoint(SERVER)


async def run_trial(trial: Trial, server: WorkspaceMCPServer, guard_s: float, delay: float) -> None:
    await anyio.sleep(delay)
    clock = SystemClock()
    binding = WorkspaceBinding(f"ws-{trial.strategy}-{trial.index}", build_id="build-1", agent_id="agent-1")
    workspaces = InMemoryWorkspaces()
    workspaces.set_agent(binding.workspace_id, "agent-1", (endpoint_of(trial, server),))
    events = EventRecorder()
    empty = trial.scenario is Scenario.EMPTY
    gives_up_after = EMPTY_TRIAL_S if empty else math.inf
    model = WorkingModel(f"{SERVER}__", step_seconds=STEP_SECONDS, now=clock.now, gives_up_after=gives_up_after)

    agent_is_ready = anyio.Event()

    def server_comes_up_later() -> None:
        trial.agent_ready_at = clock.now()
        trial.ready_at = trial.agent_ready_at + trial.offset
        if trial.scenario is not Scenario.LISTENS and not empty:
            server.ready_at = trial.ready_at
        agent_is_ready.set()

    async def come_up() -> None:
        await agent_is_ready.wait()
        if empty:  # never comes up: count what the first HELD_S cost
            await anyio.sleep(max(0.0, trial.agent_ready_at + HELD_S - clock.now()))
            trial.listings_held = server.list_calls
            return
        await anyio.sleep(max(0.0, trial.ready_at - clock.now()))
        if trial.scenario is Scenario.LISTENS:
            trial.ready_at = clock.now()  # taken before the start: its few milliseconds count against us
            await anyio.to_thread.run_sync(server.start)
        elif trial.scenario is Scenario.ANNOUNCED:
            workspaces.set_agent(binding.workspace_id, "agent-1", (endpoint_of(trial, server),))

    runtime = ChatRuntime(
        model,
        workspaces=WorkspacesFrom(
            workspaces, tools=lambda turn: [ProvisionTool(turn, binding, after=server_comes_up_later)]
        ),
        tools=[CheckStatus()],
        clock=clock,
        primer=PrimerSettings(strategy=trial.strategy),
        on_event=events,
        max_steps=int(guard_s / STEP_SECONDS) + 10,
    )
    text = f"trial {trial.strategy} {trial.index}: set up a workspace and use its tools"
    try:
        with anyio.fail_after(guard_s):
            async with runtime, anyio.create_task_group() as group:
                group.start_soon(come_up)
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
    scenario: Scenario, trials_per_strategy: int, span: float, stagger: float
) -> tuple[list[Trial], float]:
    """Run the trials of one scenario, both strategies side by side, with the same random offsets."""
    seed = SEED + list(Scenario).index(scenario)
    trials = [
        Trial(s, i, offset, scenario)
        for s in STRATEGIES
        for i, offset in enumerate(offsets(trials_per_strategy, span, seed))
    ]
    listens = scenario is Scenario.LISTENS
    servers = [
        WorkspaceMCPServer(
            echo_tools("search", "run_tests"),
            name=SERVER,
            clock=None if listens else SystemClock(),
            ready_at=None if listens else math.inf,
            port=free_port() if listens else 0,
        )
        for _ in trials
    ]
    if not listens:
        start_servers(servers)
    guard_s = (EMPTY_TRIAL_S if scenario is Scenario.EMPTY else span) + 30.0
    await warm_up()
    started = time.perf_counter()
    try:
        with harness_frozen():
            async with anyio.create_task_group() as group:
                for trial, server in zip(trials, servers, strict=True):
                    # Trial i of every strategy starts at the same moment; starts are spread over ``stagger``
                    # so that trials do not all dial at once: client and servers share this process, so a
                    # burst of dials would measure the trials' own contention.
                    delay = stagger * trial.index / trials_per_strategy
                    group.start_soon(run_trial, trial, server, guard_s, delay)
        wall = time.perf_counter() - started
    finally:
        stop_servers(servers)
    return trials, wall


def summarise(runs: dict[Scenario, tuple[list[Trial], float]], trials_per_strategy: int, span: float) -> Section:
    def values(trials: list[Trial], strategy: Strategy, metric: str) -> list[float]:
        got = [float(getattr(t, metric)) for t in trials if t.strategy == strategy]
        if metric.startswith("to_"):  # a trial whose tools never came counts as infinitely late
            return [math.inf if math.isnan(v) else v for v in got]
        return [v for v in got if not math.isnan(v)]

    def p50_p95(trials: list[Trial], strategy: Strategy, metric: str) -> tuple[float, float]:
        got = values(trials, strategy, metric)
        return percentile(got, 50), percentile(got, 95)

    section = Section()
    target = f"≤ {ms(P50_TARGET_S)} / {ms(P95_TARGET_S)}"
    for scenario, (trials, _) in runs.items():
        if scenario is Scenario.EMPTY:
            section.rows.append(empty_row(trials))
            continue
        for label, metric in (("in cache", "to_cache"), ("offered to the model", "to_model")):
            ours, ref = p50_p95(trials, "primed", metric), p50_p95(trials, "reference", metric)
            section.rows.append(
                Row(
                    NAME,
                    f"{scenario}: p50 / p95 tools {label} - server ready",
                    f"{ms(ours[0])} / {ms(ours[1])}",
                    f"{ms(ref[0])} / {ms(ref[1])}",
                    target,
                    ours[0] <= P50_TARGET_S and ours[1] <= P95_TARGET_S,
                )
            )
        attempts = {s: mean(values(trials, s, "attempts")) for s in STRATEGIES}
        listings = {s: mean(values(trials, s, "listings")) for s in STRATEGIES}
        section.rows.append(
            Row(
                NAME,
                f"{scenario}: tools/list calls (primer attempts) per trial, mean",
                f"{listings['primed']:.1f} ({attempts['primed']:.1f})",
                f"{listings['reference']:.1f} ({attempts['reference']:.1f})",
                "—",
            )
        )
    every = [t for scenario, (trials, _) in runs.items() if scenario is not Scenario.EMPTY for t in trials]
    share = {
        s: sum(1 for t in every if t.strategy == s and t.offered_step == 1)
        / max(1, sum(t.strategy == s for t in every))
        for s in STRATEGIES
    }
    section.rows.append(
        Row(
            NAME,
            "first step after provisioning offers the workspace tools (all scenarios)",
            pct(share["primed"]),
            pct(share["reference"]),
            "100%",
            share["primed"] >= 1.0,
        )
    )
    held = {s: percentile(values(every, s, "held"), 95) for s in STRATEGIES}
    section.rows.append(
        Row(NAME, "p95 agent_ready() → next model step starts", ms(held["primed"]), ms(held["reference"]), "—")
    )
    walls = ", ".join(f"{scenario} {wall:.1f} s" for scenario, (_, wall) in runs.items())
    section.notes.append(
        f"1-2: {trials_per_strategy} trials per strategy and scenario, server ready at a stratified random offset in "
        f"[0, {span:g}) s after agent_ready() (the same offsets for both strategies); model steps take "
        f"{STEP_SECONDS} s; one server, chat and runtime per trial; a scenario's trials run concurrently ({walls}). "
        "'starts listening': connections are refused until the server process is up; 'announced': it lists "
        "nothing until ready and the backend's change stream fires then; 'silent': no signal at all, so only the "
        "primer's retries (at most 16 in 30 s) and the held step's look find the tools."
    )
    empty = [t for scenario, (trials, _) in runs.items() if scenario is Scenario.EMPTY for t in trials]
    if empty:
        section.notes.append(
            f"1-2: 'always empty': {len(empty) // len(STRATEGIES)} trials per strategy; the server answers every "
            f"listing with no tools, and the model (a listing per step for both strategies) gives up at the first "
            f"step {EMPTY_TRIAL_S:g} s after it started; the first {HELD_S:g} s are the primed strategy's held step."
        )
    failed = [t for t in every if t.error is not None or math.isnan(t.to_model)]
    failed += [t for t in empty if t.error is not None]
    if failed:
        summary = ", ".join(
            f"{t.scenario}/{t.strategy}#{t.index}: {t.error or 'tools never offered'}" for t in failed[:5]
        )
        section.notes.append(f"1-2: {len(failed)} trial(s) incomplete ({summary}).")
    return section


def empty_row(trials: list[Trial]) -> Row:
    """Listings per trial against a server that never lists a tool: the first HELD_S, and the whole trial."""

    def mean_of(strategy: Strategy, metric: str) -> float:
        got = [float(getattr(t, metric)) for t in trials if t.strategy == strategy and t.error is None]
        return mean([v for v in got if not math.isnan(v)])

    cells = {
        s: f"{mean_of(s, 'listings_held'):.1f} / {mean_of(s, 'listings'):.1f} ({mean_of(s, 'attempts'):.1f})"
        for s in STRATEGIES
    }
    metric = (
        f"{Scenario.EMPTY} (answers, never lists a tool): tools/list calls per trial, "
        f"first {HELD_S:g} s / {EMPTY_TRIAL_S:g} s (primer attempts), mean"
    )
    return Row(NAME, metric, cells["primed"], cells["reference"], "—")


def run(quick: bool) -> Section:
    trials_per_strategy, span, stagger = (6, 3.0, 1.5) if quick else (20, 10.0, 6.0)
    # Counting listings needs few trials (each is alike), and each lasts EMPTY_TRIAL_S whatever the mode.
    empty_trials = 2 if quick else 6
    runs = {
        scenario: anyio.run(
            measure, scenario, empty_trials if scenario is Scenario.EMPTY else trials_per_strategy, span, stagger
        )
        for scenario in Scenario
    }
    return summarise(runs, trials_per_strategy, span)
