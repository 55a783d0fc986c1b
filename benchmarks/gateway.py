"""Benchmark 5: the workspace gateway and its discovery report.

Each trial runs the real gateway command (``chat-mcp-primer gateway``, in a process of its own as in a
workspace) with a real stdio MCP server from a ``.mcp.json``, and a runtime whose chat provisions the
workspace (``agent_ready()`` at step 0) and keeps working in 0.5 s model steps until it is offered the
workspace tools. Three measures:

- *ready to offered*: the gateway's server comes up 0.5-2.3 s after the agent (a ``--start-delay``); from
  the moment the gateway's report says it is ``ok`` (seen by a held read of the report, as the runtime's) to
  the model's first step offering its tools;
- *no MCP servers*: the workspace's servers are all tried and none has tools (its one server comes up with
  none, 1-2 s after the agent): from the report completing to the held step going on, and primer retries;
- *never any tools*: listings in 30 s against a server that lists no tools: behind the gateway (primed),
  the same server as a plain MCP app without a report, and the reference (which reads no report).
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from http import HTTPStatus
from pathlib import Path

import anyio
import httpx

from benchmarks._common import GUARD_S, CheckStatus, Row, Section, WorkingModel, harness_frozen, ms, percentile, warm_up
from chat_mcp_primer import Chat, ChatRuntime, PrimerSettings, SystemClock, WorkspaceBinding
from chat_mcp_primer.gateway import DISCOVERY_PATH, MCP_PATH
from chat_mcp_primer.runtime import WorkspacesFrom
from chat_mcp_primer.testing import EventRecorder, InMemoryWorkspaces, ProvisionTool, WorkspaceMCPServer, free_port
from chat_mcp_primer.workspace import McpEndpoint
from chat_mcp_primer.workspace_mcp import Strategy

NAME = "5 gateway"
SERVER = "ws"
STEP_SECONDS = 0.5
# The targets: server ready to tools offered, and the held step after the report completes.
P50_TARGET_S = 0.020
P95_TARGET_S = 0.050
RELEASE_TARGET_S = 0.050
EMPTY_TRIAL_S = PrimerSettings().max_wait
# The stdio test server the gateway runs (the gateway's tests use it too).
STDIO_SERVER = Path(__file__).resolve().parent.parent / "tests" / "gateway_servers" / "stdio_server.py"
# One held read of the report in the benchmark's own watch, plus room: the gateway holds it up to 25 s.
REPORT_READ_S = 35.0
# Counted as one listing each: the events a listing ends with.
LISTING_EVENTS = ("discovery.server_listed", "discovery.server_failed", "discovery.stale_listing_dropped")


@dataclass(slots=True)
class Trial:
    delay: float
    ready_at: float = math.nan  # the gateway's report says the server is ok (or, without tools, empty)
    complete_at: float = math.nan  # the report's phase is complete
    offered_at: float = math.nan
    held_from: float = math.nan
    held_until: float = math.nan
    attempts: int = 0
    listings: int = 0
    error: str | None = None

    @property
    def to_model(self) -> float:
        return self.offered_at - self.ready_at

    @property
    def release(self) -> float:
        return self.held_until - max(self.complete_at, self.held_from)


def stdio(*args: str) -> dict[str, object]:
    return {"command": sys.executable, "args": [str(STDIO_SERVER), *args]}


@asynccontextmanager
async def serving(config: Path, trial: Trial) -> AsyncIterator[str]:
    """The gateway command for ``config`` on a fresh loopback port, in a process of its own as in a workspace;
    a held read of its report notes when its server is up and when the report is complete."""
    port = free_port()
    command = [sys.executable, "-m", "chat_mcp_primer", "gateway", "--listen", f"127.0.0.1:{port}", "--config"]
    base_url = f"http://127.0.0.1:{port}"
    async with await anyio.open_process([*command, str(config)], stdout=None, stderr=subprocess.DEVNULL) as process:
        try:
            async with httpx.AsyncClient(base_url=base_url, timeout=REPORT_READ_S) as http:
                etag = await _first_report(http)
                async with anyio.create_task_group() as group:
                    group.start_soon(_note_progress, http, etag, trial)
                    yield base_url
                    group.cancel_scope.cancel()
        finally:
            process.send_signal(signal.SIGTERM)
            await process.wait()


async def _first_report(http: httpx.AsyncClient) -> str:
    with anyio.fail_after(GUARD_S):
        while True:
            try:
                return (await http.get(DISCOVERY_PATH)).headers["etag"]
            except httpx.TransportError:  # not listening yet
                await anyio.sleep(0.02)


async def _note_progress(http: httpx.AsyncClient, etag: str, trial: Trial) -> None:
    """Hold reads of the report (as the runtime does) and note when it first says the server is up, and
    when it is first complete."""
    while math.isnan(trial.ready_at) or math.isnan(trial.complete_at):
        response = await http.get(DISCOVERY_PATH, headers={"If-None-Match": etag, "Prefer": "wait=25"})
        now = time.monotonic()
        if response.status_code != HTTPStatus.OK:
            continue
        etag, report = response.headers["etag"], response.json()
        line = report["servers"].get(SERVER)
        if line is not None and line["status"] in ("ok", "empty") and math.isnan(trial.ready_at):
            trial.ready_at = now
        if report["phase"] == "complete" and math.isnan(trial.complete_at):
            trial.complete_at = now


async def run_chat(
    endpoint: McpEndpoint, trial: Trial, strategy: Strategy, gives_up_after: float = math.inf
) -> EventRecorder:
    clock = SystemClock()
    binding = WorkspaceBinding("ws-1", build_id="build-1", agent_id="agent-1")
    workspaces = InMemoryWorkspaces()
    workspaces.set_agent("ws-1", "agent-1", (endpoint,))
    events = EventRecorder()
    model = WorkingModel(f"{SERVER}__", step_seconds=STEP_SECONDS, now=clock.now, gives_up_after=gives_up_after)
    runtime = ChatRuntime(
        model,
        workspaces=WorkspacesFrom(workspaces, tools=lambda turn: [ProvisionTool(turn, binding)]),
        tools=[CheckStatus()],
        clock=clock,
        primer=PrimerSettings(strategy=strategy),
        on_event=events,
        max_steps=int((gives_up_after if math.isfinite(gives_up_after) else 60) / STEP_SECONDS) + 10,
    )
    text = "set up a workspace and use its tools"
    try:
        with anyio.fail_after(EMPTY_TRIAL_S + 30):
            async with runtime:
                await runtime.run_turn(Chat(id="chat-1", owner="bench"), text)
    except TimeoutError:
        trial.error = "timed out"
    offered = model.offered.get(text)
    if offered is not None:
        trial.offered_at = offered.at
    waiting = events.named("prepare.waiting_for_primer")
    ended = events.named("prepare.hold_ended")
    if waiting and ended:
        trial.held_from, trial.held_until = waiting[0].at, ended[0].at
    trial.attempts = len(events.named("primer.attempt"))
    trial.listings = sum(len(events.named(name)) for name in LISTING_EVENTS)
    return events


def gateway_endpoint(base_url: str) -> McpEndpoint:
    return McpEndpoint(server=SERVER, url=base_url + MCP_PATH, report_url=base_url + DISCOVERY_PATH)


async def gateway_trial(
    directory: Path, trial: Trial, *, tools: str | None, strategy: Strategy = "primed", gives_up: float = math.inf
) -> None:
    """One chat against a gateway whose one server comes up ``trial.delay`` s after it starts, listing
    ``tools`` ("" for none; None: the ``.mcp.json`` declares no server at all)."""
    config = directory / f"{id(trial)}.mcp.json"
    servers = {}
    if tools is not None:
        args = ("--tools", tools) if tools else ()
        servers[SERVER] = stdio(*args, "--start-delay", f"{trial.delay:.3f}")
    config.write_text(json.dumps({"mcpServers": servers}))
    async with serving(config, trial) as base_url:
        await run_chat(gateway_endpoint(base_url), trial, strategy, gives_up_after=gives_up)


async def plain_app_trial(trial: Trial) -> None:
    """The same never-listing server as a plain MCP app: no report to read."""
    with WorkspaceMCPServer([], name=SERVER) as server:
        await run_chat(server.endpoint(SERVER), trial, "primed", gives_up_after=EMPTY_TRIAL_S)
        trial.listings = server.list_calls


@dataclass(slots=True)
class Runs:
    ready: list[Trial]
    no_servers: list[Trial]
    empty_later: list[Trial]
    never: dict[str, Trial]


async def measure(quick: bool) -> Runs:
    """The trials one after the other (a gateway is a workspace's, on a machine of its own: trials at once
    would measure this machine's two cores starting each other's servers)."""
    count = 4 if quick else 10
    runs = Runs(
        ready=[Trial(delay=0.5 + 2.0 * i / count) for i in range(count)],
        no_servers=[Trial(delay=0.0) for _ in range(2 if quick else 3)],
        empty_later=[Trial(delay=0.5 + 0.5 * i) for i in range(2 if quick else 3)],
        never={"gateway": Trial(0.0), "plain app": Trial(0.0), "reference": Trial(0.0)},
    )
    await warm_up()
    with tempfile.TemporaryDirectory() as directory, harness_frozen():
        where = Path(directory)
        for trial in runs.ready:
            await gateway_trial(where, trial, tools="search")
        for trial in runs.no_servers:
            await gateway_trial(where, trial, tools=None, gives_up=STEP_SECONDS)
        for trial in runs.empty_later:
            await gateway_trial(where, trial, tools="", gives_up=STEP_SECONDS)
        if not quick:  # 30 s each: the three side by side
            async with anyio.create_task_group() as group:
                never = runs.never
                group.start_soon(partial(gateway_trial, where, never["gateway"], tools="", gives_up=EMPTY_TRIAL_S))
                group.start_soon(plain_app_trial, never["plain app"])
                group.start_soon(
                    partial(
                        gateway_trial, where, never["reference"], tools="", strategy="reference", gives_up=EMPTY_TRIAL_S
                    )
                )
    return runs


def summarise(runs: Runs, quick: bool) -> Section:
    section = Section()
    late = [t.to_model if not math.isnan(t.to_model) else math.inf for t in runs.ready]
    p50, p95 = percentile(late, 50), percentile(late, 95)
    section.rows.append(
        Row(
            NAME,
            "with the gateway: p50 / p95 tools offered to the model - server ready (the report says ok)",
            f"{ms(p50)} / {ms(p95)}",
            "—",
            f"≤ {ms(P50_TARGET_S)} / {ms(P95_TARGET_S)}",
            p50 <= P50_TARGET_S and p95 <= P95_TARGET_S,
        )
    )
    held = [t.held_until - t.held_from if not math.isnan(t.held_until) else 0.0 for t in runs.no_servers]
    retries = max((t.attempts - 1 for t in runs.no_servers), default=0)
    section.rows.append(
        Row(
            NAME,
            "no MCP servers (.mcp.json declares none): held step, worst; primer retries",
            f"{ms(max(held, default=math.nan))}; {retries}",
            "—",
            f"≤ {ms(RELEASE_TARGET_S)}; 0",
            max(held, default=math.inf) <= RELEASE_TARGET_S and retries == 0,
        )
    )
    releases = [t.release if not math.isnan(t.release) else math.inf for t in runs.empty_later]
    listings = max((t.listings for t in runs.empty_later), default=0)
    section.rows.append(
        Row(
            NAME,
            "a server that comes up with no tools: held step goes on - report complete, worst (tools/list calls)",
            f"{ms(max(releases, default=math.nan))} ({listings})",
            "—",
            f"≤ {ms(RELEASE_TARGET_S)}",
            max(releases, default=math.inf) <= RELEASE_TARGET_S,
        )
    )
    if not quick:
        cells = {label: f"{trial.listings} ({trial.attempts})" for label, trial in runs.never.items()}
        section.rows.append(
            Row(
                NAME,
                f"a server that never lists a tool: tools/list calls in {EMPTY_TRIAL_S:g} s (primer attempts): "
                "behind the gateway / as a plain MCP app without a report",
                f"{cells['gateway']} / {cells['plain app']}",
                cells["reference"],
                "—",
            )
        )
    section.notes.append(
        f"5: {len(runs.ready)} trials one after the other, the gateway's one stdio server up "
        f"{runs.ready[0].delay:g}-{runs.ready[-1].delay:.1f} s after the gateway started (--start-delay) and after "
        f"agent_ready(); 'server ready' is when the gateway's report says it is ok (the gateway has listed it). "
        f"The gateway is a process of its own, as in a workspace, and so is its server; model steps take "
        f"{STEP_SECONDS} s. 'No MCP servers': {len(runs.no_servers)} trials; 'comes up with no tools': "
        f"{len(runs.empty_later)} trials, the report pending until then."
    )
    trials = [*runs.ready, *runs.no_servers, *runs.empty_later, *runs.never.values()]
    failed = [t for t in trials if t.error is not None]
    if failed:
        section.notes.append(f"5: {len(failed)} trial(s) incomplete: {', '.join(str(t.error) for t in failed[:3])}.")
    return section


def run(quick: bool) -> Section:
    return summarise(anyio.run(measure, quick), quick)
