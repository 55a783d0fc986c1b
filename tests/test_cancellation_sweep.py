"""Cancel a running turn at every point where it waits, and check it leaves nothing behind.

Every wait of the library goes through the injected clock with tags, so the sweep finds the wait points
by trapping: a first run of each scenario records the tags of every wait it makes (a trap on no tags
catches every sleep), then, for each distinct wait, a fresh run is cancelled the first time it reaches
that wait. A wait added to the library is swept as soon as a scenario reaches it;
`test_every_tagged_wait_of_the_library_is_swept` fails when one is not.

After each cancellation: no task is left (counted on the event loop), no MCP session is left open on
the servers, the tool cache holds only complete, non-empty listings, and the next turn on the same
`ChatRuntime` works and is offered the workspace tools.

Both scenarios run on asyncio and trio: the servers (WorkspaceMCPServer, FakeCoder) run on uvicorn in
threads of their own (`LoopbackServer`), so no wait needs the test's own loop to be asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
import redis.asyncio
import sniffio
from mcp import Client
from tests._turns import new_hub, shared_turn

import chat_mcp_primer
from chat_mcp_primer import Chat, ChatRuntime, ModelResponse, ToolResult, ToolSpec
from chat_mcp_primer.cli.serve_mcp import WorkspaceLifecycle, build_server
from chat_mcp_primer.clock import tags as clock_tags
from chat_mcp_primer.gateway import Gateway, Phase
from chat_mcp_primer.model import WorkspaceBinding
from chat_mcp_primer.redis import RedisCacheSettings, RedisToolCache
from chat_mcp_primer.runtime import WorkspacesFrom
from chat_mcp_primer.testing import (
    EventRecorder,
    FakeAgent,
    FakeCoder,
    FakeMcpServer,
    FakeTemplate,
    FakeVersion,
    InMemoryWorkspaces,
    MockClock,
    ProvisionTool,
    RedisServer,
    ScriptedModel,
    ServedFakeCoder,
    WorkspaceMCPServer,
    call,
    echo_tools,
    free_port,
)
from chat_mcp_primer.tools import CoderWorkspaces
from chat_mcp_primer.workspace import McpEndpoint
from chat_mcp_primer.workspace.coder import CoderBackend, CoderClient
from chat_mcp_primer.workspace_mcp import CacheKey, MemoryToolCache, PrimerSettings, RemoteTool
from chat_mcp_primer.workspace_mcp._hub import WorkspaceMcpHub

pytestmark = pytest.mark.anyio

Tags = tuple[str, ...]
# Guards against a hang in real time only.
GUARD_S = 60
# Bounded real-time wait for a server thread to notice closed sockets: 10 s in 10 ms polls.
IDLE_POLLS = 1000
IDLE_POLL_S = 0.01

# Short budgets keep each scenario to a few seconds of fake time; the waits are the same ones.
SWEEP_SETTINGS = PrimerSettings(prepare_wait=1.0, max_wait=6.0, report_pending_limit=1.0)
PENDING_REPORT = {"run_id": "run-1", "phase": "pending", "servers": {"search": {"status": "starting", "tools": 0}}}
DOCS_READY_AFTER = 0.5


# -- observing what a turn leaves behind -----------------------------------------------------------


def count_tasks() -> int:
    """Tasks alive in the current event loop, on asyncio or trio."""
    if sniffio.current_async_library() == "asyncio":
        return len(asyncio.all_tasks())
    import trio

    def subtree(task: trio.lowlevel.Task) -> int:
        return 1 + sum(subtree(child) for nursery in task.child_nurseries for child in nursery.child_tasks)

    return subtree(trio.lowlevel.current_root_task())


async def wait_for_no_connections(describe: str, open_connections: Callable[[], int]) -> None:
    """A server thread notices closed sockets a moment after the client closed them: poll, bounded."""
    for _ in range(IDLE_POLLS):
        if open_connections() == 0:
            return
        await anyio.sleep(IDLE_POLL_S)
    raise AssertionError(f"{open_connections()} connection(s) still open to {describe}")


def sessions_left_cold(events: EventRecorder) -> list[tuple[str, str]]:
    """Sessions still open that never listed tools: a turn must close those when it ends, however it ends
    (sessions that did list tools are kept for the runtime's next turns)."""
    opened: dict[tuple[str, str], int] = {}
    for event in events.events:
        key = (str(event.fields.get("server")), str(event.fields.get("agent_id")))
        if event.name == "session.dialing":
            opened[key] = opened.get(key, 0) + 1
        elif event.name == "session.closed":
            opened[key] -= 1
    warm = {
        (str(e.fields["server"]), str(e.fields["agent_id"]))
        for e in events.named("discovery.server_listed")
        if e.fields["tools"]
    }
    return [key for key, count in opened.items() if count > 0 and key not in warm]


async def cold_sessions_after_closing(events: EventRecorder) -> list[tuple[str, str]]:
    """`sessions_left_cold` once closing sessions had time to end: a session is closed by its owner task,
    politely (the server is told), a moment after it was released. Polls in real time, bounded."""
    for _ in range(IDLE_POLLS):
        if not sessions_left_cold(events):
            break
        await anyio.sleep(IDLE_POLL_S)
    return sessions_left_cold(events)


class WatchedCache(MemoryToolCache):
    """The library's in-memory cache, remembering every key a listing was offered for, so a test can
    look at every entry afterwards."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: set[CacheKey] = set()

    async def put(self, key: CacheKey, tools: tuple[RemoteTool, ...], generation: int) -> bool:
        self.keys.add(key)
        return await super().put(key, tools, generation)

    async def problems(self, catalogues: Mapping[str, list[str]]) -> list[str]:
        """Entries that are empty or differ from the server's whole catalogue (``catalogues`` by server)."""
        found = []
        for key in sorted(self.keys, key=repr):
            entry = await self.get(key)
            if entry is not None and [tool.name for tool in entry] != catalogues[key.server]:
                found.append(f"{key}: {[tool.name for tool in entry]}")
        return found


# -- cancelling at a wait ----------------------------------------------------------------------------


async def record_waits(clock: MockClock, run: Callable[[], Awaitable[object]]) -> list[Tags]:
    """Run ``run`` with every wait trapped and released at once; the distinct tags, first seen first."""
    seen: list[Tags] = []
    with clock.trap() as every_wait:
        async with anyio.create_task_group() as group:

            async def release_all() -> None:
                while True:
                    caught = await every_wait.wait()
                    if caught.tags not in seen:
                        seen.append(caught.tags)
                    caught.release()

            group.start_soon(release_all)
            await run()
            group.cancel_scope.cancel()
    return seen


# How a turn is cancelled at a wait. "scope": a cancel scope right around the turn. The others cancel it
# from outside an enclosing task group of the caller's, as a web server does when a client disconnects
# and asyncio.run does on Ctrl-C; the cancellation must leave that group as a cancellation, one higher in
# the host task's `cancelling()` on asyncio (else an enclosing asyncio.TaskGroup or asyncio.timeout takes
# it as handled and carries on).
SCOPE = "scope"
TASK_CANCEL_ASYNCIO_GROUP = "Task.cancel() of a task awaiting the turn inside an asyncio.TaskGroup"
TASK_CANCEL_ANYIO_GROUP = "Task.cancel() of a task running the turn in an anyio task group"
OUTER_SCOPE = "an outer cancel scope around an anyio task group running the turn"
ASYNCIO_ONLY = (TASK_CANCEL_ASYNCIO_GROUP, TASK_CANCEL_ANYIO_GROUP)
OUTSIDE = (*ASYNCIO_ONLY, OUTER_SCOPE)


@dataclass
class Cancelled:
    """What cancelling a run at a wait did, as the caller saw it."""

    reached: bool = False  # the run reached the wait and was cancelled there
    problems: list[str] = field(default_factory=list)  # how the cancellation failed to reach the caller


async def cancel_at(
    clock: MockClock, target: Tags, run: Callable[[], Awaitable[object]], how: str = SCOPE
) -> Cancelled:
    """Run ``run``, cancelling it ``how`` the first time it reaches a wait tagged exactly ``target``.

    The wait is trapped, so the cancellation lands while the code is parked right there.
    """
    outcome = Cancelled()
    cancel = await _start_cancellable(run, how, outcome)
    with clock.trap(*target) as waits:
        async with anyio.create_task_group() as group:

            async def cancel_on_target() -> None:
                while True:
                    caught = await waits.wait()
                    if caught.tags == target and not outcome.reached:
                        outcome.reached = True
                        cancel.now()  # left trapped: the cancellation is delivered at this very wait
                    else:
                        caught.release()

            group.start_soon(cancel_on_target)
            await cancel.finished()
            group.cancel_scope.cancel()
    if not outcome.reached:
        outcome.problems.clear()  # the run ended on its own: nothing was cancelled
    return outcome


@dataclass
class _Cancellable:
    now: Callable[[], None]  # cancel the run the chosen way
    finished: Callable[[], Awaitable[None]]  # wait until the run (and what encloses it) has ended


async def _start_cancellable(run: Callable[[], Awaitable[object]], how: str, outcome: Cancelled) -> _Cancellable:
    if how == SCOPE:
        turn = anyio.CancelScope()

        async def run_in_scope() -> None:
            with turn:
                await run()

        return _Cancellable(turn.cancel, run_in_scope)
    if how == OUTER_SCOPE:
        outer = anyio.CancelScope()

        async def run_enclosed() -> None:
            cancelling_before = _cancelling()
            with outer:
                async with anyio.create_task_group() as group:
                    group.start_soon(run)
            if outcome.reached and not outer.cancelled_caught:
                outcome.problems.append("the outer scope's cancellation never reached it")
            if _cancelling() != cancelling_before:
                outcome.problems.append(f"cancelling() went from {cancelling_before} to {_cancelling()}")

        return _Cancellable(outer.cancel, run_enclosed)
    return _start_task_cancellable(run, how, outcome)


def _cancelling() -> int:
    return asyncio.current_task().cancelling() if sniffio.current_async_library() == "asyncio" else 0  # type: ignore[union-attr]


def _start_task_cancellable(run: Callable[[], Awaitable[object]], how: str, outcome: Cancelled) -> _Cancellable:
    async def enclosed() -> None:
        if how == TASK_CANCEL_ASYNCIO_GROUP:
            async with asyncio.TaskGroup():
                await run()
        else:
            async with anyio.create_task_group() as group:
                group.start_soon(run)

    async def host() -> None:
        try:
            await enclosed()
        except asyncio.CancelledError:
            if outcome.reached and _cancelling() != 1:
                outcome.problems.append(f"cancelling() is {_cancelling()} as the cancellation leaves, not 1")
            raise
        if outcome.reached:
            outcome.problems.append("the task carried on as if never cancelled")

    task = asyncio.create_task(host())

    async def finished() -> None:
        await asyncio.wait({task})
        if outcome.reached and not task.cancelled():
            error = task.exception()
            outcome.problems.append(f"the task ended {'with ' + repr(error) if error else 'normally'}, not cancelled")

    return _Cancellable(task.cancel, finished)


@dataclass
class Sweep:
    """What went wrong at which wait; reported together, so one run shows every failing wait."""

    failures: list[str] = field(default_factory=list)

    def check(self, wait: Tags, how: str, condition: bool, what: str) -> None:
        if not condition:
            self.failures.append(f"cancelled at {wait} by {how}: {what}")

    def check_cancelled(self, wait: Tags, how: str, cancelled: Cancelled) -> None:
        self.check(wait, how, cancelled.reached, "the rerun never reached this wait")
        for problem in cancelled.problems:
            self.check(wait, how, False, problem)

    def report(self) -> None:
        assert not self.failures, "\n".join(self.failures)


def cancellations() -> tuple[str, ...]:
    """Every way to cancel a turn that the running backend has (trio has no Task.cancel())."""
    if sniffio.current_async_library() == "asyncio":
        return (SCOPE, *OUTSIDE)
    return (SCOPE, OUTER_SCOPE)


# -- scenario 1: in-memory workspaces, real MCP servers on loopback ----------------------------------


DOCS_TOOLS = ["search"]
LATE_TOOLS = ["deploy"]
READY = WorkspaceBinding("ws-1", build_id="build-1", agent_id="agent-1")


class StartLateServer:
    """A built-in tool that starts the workspace's second MCP server, which refused connections until now."""

    spec = ToolSpec(name="start_late_server", description="Start the late MCP server.")

    def __init__(self, server: WorkspaceMCPServer, running: contextlib.ExitStack) -> None:
        self._server = server
        self._running = running
        self._started = False

    async def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        if not self._started:  # a turn cancelled earlier may have started it already
            self._running.enter_context(self._server)
            self._started = True
        return ToolResult("started")


@dataclass
class InMemoryWorld:
    """One workspace with two MCP servers: ``docs`` lists tools shortly after the agent is ready; ``late``
    refuses connections until the model starts it (so the primer probes it)."""

    clock: MockClock
    workspaces: InMemoryWorkspaces
    docs: WorkspaceMCPServer
    shared: bool  # the runtime is entered: sessions are shared by its turns; else each turn has its own

    def runtime(
        self, model: ScriptedModel, tools: list[Any], cache: WatchedCache, events: EventRecorder
    ) -> ChatRuntime:
        return ChatRuntime(
            model,
            workspaces=WorkspacesFrom(self.workspaces, tools=lambda turn: [ProvisionTool(turn, READY)]),
            tools=tools,
            clock=self.clock,
            primer=SWEEP_SETTINGS,
            cache=cache,
            on_event=events,
        )

    @contextlib.contextmanager
    def late_server(self) -> Iterator[tuple[WorkspaceMCPServer, contextlib.ExitStack]]:
        """A late server on a port that refuses connections until the model starts it; exposed by the agent."""
        late = WorkspaceMCPServer(echo_tools(*LATE_TOOLS), name="late", port=free_port())
        with contextlib.ExitStack() as running:
            endpoint = McpEndpoint(server="late", url=f"http://127.0.0.1:{late.port}/mcp")
            self.workspaces.set_agent("ws-1", "agent-1", (self.docs.endpoint(), endpoint))
            self.docs.ready_at = self.clock.now() + DOCS_READY_AFTER
            yield late, running

    @staticmethod
    def script() -> ScriptedModel:
        return ScriptedModel(
            [
                ModelResponse(tool_calls=(call("provision"),)),
                ModelResponse(tool_calls=(call("docs__search", '{"q": "x"}'), call("start_late_server"))),
                ModelResponse(tool_calls=(call("late__deploy"),)),
                ModelResponse(text="done"),
            ]
        )

    async def turn(self, runtime: ChatRuntime, chat_id: str) -> None:
        await runtime.run_turn(Chat(id=chat_id, owner="alice"), "provision, search, deploy")

    @staticmethod
    def offered_everything(model: ScriptedModel) -> bool:
        return any("docs__search" in names and "late__deploy" in names for names in model.offered)

    @contextlib.asynccontextmanager
    async def opened(self, runtime: ChatRuntime) -> AsyncIterator[ChatRuntime]:
        if self.shared:
            async with runtime:
                yield runtime
        else:
            yield runtime

    async def record_waits(self, chat_id: str) -> list[Tags]:
        """The waits one whole turn makes (not those of entering and closing the runtime)."""
        with self.late_server() as (late, running):
            model = self.script()
            runtime = self.runtime(model, [StartLateServer(late, running)], WatchedCache(), EventRecorder())
            with anyio.fail_after(GUARD_S):
                async with self.clock.autojump(), self.opened(runtime):
                    waits = await record_waits(self.clock, lambda: self.turn(runtime, chat_id))
            assert self.offered_everything(model), model.offered
        return waits

    async def wait_for_no_sessions(self, late: WorkspaceMCPServer) -> None:
        await self.docs.wait_until_idle()
        await late.wait_until_idle()


@pytest.fixture
def docs_server(clock: MockClock) -> Iterator[WorkspaceMCPServer]:
    # Its discovery report stays pending and it does not hold a read (no long polls): the runtime polls the
    # report until `report_pending_limit`, then lists all the same (fails open).
    with WorkspaceMCPServer(
        echo_tools(*DOCS_TOOLS), name="docs", clock=clock, report=PENDING_REPORT, report_waits=False
    ) as server:
        yield server


@pytest.mark.parametrize("shared", [True, False], ids=["shared-sessions", "per-turn-sessions"])
async def test_cancelling_an_in_memory_turn_at_any_wait_leaves_nothing_behind(
    clock: MockClock, workspaces: InMemoryWorkspaces, docs_server: WorkspaceMCPServer, shared: bool
) -> None:
    world = InMemoryWorld(clock, workspaces, docs_server, shared)
    catalogues = {"docs": DOCS_TOOLS, "late": LATE_TOOLS}
    runs = iter(range(1_000))

    waits = await world.record_waits(f"chat-{next(runs)}")
    assert {("workspace-mcp", "dial", "timeout"), ("primer", "retry"), ("prepare", "wait")} <= set(waits)

    sweep = Sweep()
    for wait, how in itertools.product(waits, cancellations()):
        baseline = count_tasks()
        with world.late_server() as (late, running):
            cache, events = WatchedCache(), EventRecorder()
            model, next_model = world.script(), world.script()
            runtime = world.runtime(model, [StartLateServer(late, running)], cache, events)
            with anyio.fail_after(GUARD_S):
                async with clock.autojump(), world.opened(runtime):
                    before = count_tasks()
                    turn = partial(world.turn, runtime, f"chat-{next(runs)}")
                    sweep.check_cancelled(wait, how, await cancel_at(clock, wait, turn, how))
                    sweep.check(wait, how, runtime.active_turns == 0, "the turn is still registered as running")
                    problems = await cache.problems(catalogues)
                    sweep.check(wait, how, not problems, f"the cache holds partial listings {problems}")
                    cold = await cold_sessions_after_closing(events)
                    sweep.check(wait, how, not cold, f"sessions that never listed tools are still open: {cold}")
                    if not shared:  # the turn owned its sessions: all of them are gone with it
                        sweep.check(wait, how, count_tasks() == before, f"{count_tasks() - before} task(s) left")
                        await world.wait_for_no_sessions(late)
                    # The next turn on the same runtime works and is offered every workspace tool.
                    runtime.model = next_model
                    await world.turn(runtime, f"chat-{next(runs)}")
                    sweep.check(
                        wait, how, world.offered_everything(next_model), f"next turn offered {next_model.offered}"
                    )
            # Everything the runtime and its turns started has ended, and no connection is left open.
            sweep.check(
                wait, how, count_tasks() == baseline, f"{count_tasks() - baseline} task(s) left after the runtime"
            )
            await world.wait_for_no_sessions(late)
    sweep.report()


# -- scenario 2: Coder over loopback (FakeCoder), the workspace tools, the app proxy ----------------

COLD_START = 3.0
CODER_TOOLS = ["search"]


@pytest.fixture
def fake(clock: MockClock) -> FakeCoder:
    server = FakeMcpServer(tools=echo_tools(*CODER_TOOLS), cold_start_seconds=COLD_START)
    return FakeCoder(
        clock, templates=[FakeTemplate("docker", [FakeVersion("v1", agents=[FakeAgent(mcp_servers=[server])])])]
    )


@dataclass
class CoderWorld:
    """Each turn creates a workspace (one REST call answered 503 first, so the client's backoff is among the
    waits), waits for its build and agent, primes the MCP server behind Coder's app proxy while it
    cold-starts, and calls its tool. Turns have their own sessions (the runtime is not entered)."""

    clock: MockClock
    fake: FakeCoder
    coder: ServedFakeCoder
    runs: Iterator[int] = field(default_factory=lambda: iter(range(1_000)))

    def script(self) -> ScriptedModel:
        arguments = {"template_id": self.fake.template_id("docker"), "name": f"dev-{next(self.runs)}"}
        return ScriptedModel(
            [
                ModelResponse(tool_calls=(call("create_workspace", json.dumps(arguments)),)),
                ModelResponse(tool_calls=(call("mcp__search", '{"q": "x"}'),)),
                ModelResponse(text="done"),
            ]
        )

    @staticmethod
    def offered_the_tools(model: ScriptedModel) -> bool:
        return model.first_step_offering(lambda name: name == "mcp__search") == 1

    def client(self) -> CoderClient:
        return CoderClient(self.coder.url, self.coder.token, clock=self.clock)

    def runtime(self, client: CoderClient, model: ScriptedModel, cache: WatchedCache) -> ChatRuntime:
        return ChatRuntime(model, workspaces=CoderWorkspaces(CoderBackend(client)), clock=self.clock, cache=cache)

    async def turn(self, runtime: ChatRuntime) -> None:
        self.fake.fail_requests(1, status=503)
        await runtime.run_turn(Chat(id=f"chat-{next(self.runs)}", owner="alice"), "set up a workspace and search")

    async def record_waits(self) -> list[Tags]:
        async with self.client() as client:
            model = self.script()
            runtime = self.runtime(client, model, WatchedCache())
            with anyio.fail_after(GUARD_S):
                async with self.clock.autojump():
                    waits = await record_waits(self.clock, lambda: self.turn(runtime))
        assert self.offered_the_tools(model), model.offered
        return waits


async def test_cancelling_a_coder_turn_at_any_wait_leaves_nothing_behind(
    clock: MockClock, fake: FakeCoder, coder: ServedFakeCoder
) -> None:
    world = CoderWorld(clock, fake, coder)
    waits = await world.record_waits()
    assert {("coder", "build-poll"), ("coder", "retry"), ("workspace-mcp", "call", "timeout")} <= set(waits)

    sweep = Sweep()
    for wait, how in itertools.product(waits, cancellations()):
        baseline = count_tasks()
        async with world.client() as client:
            cache = WatchedCache()
            model, next_model = world.script(), world.script()
            runtime = world.runtime(client, model, cache)
            with anyio.fail_after(GUARD_S):
                async with clock.autojump():
                    before = count_tasks()
                    cancelled = await cancel_at(clock, wait, partial(world.turn, runtime), how)
                    sweep.check_cancelled(wait, how, cancelled)
                    sweep.check(wait, how, runtime.active_turns == 0, "the turn is still registered as running")
                    sweep.check(wait, how, count_tasks() == before, f"{count_tasks() - before} task(s) left")
                    problems = await cache.problems({"mcp": CODER_TOOLS})
                    sweep.check(wait, how, not problems, f"the cache holds partial listings {problems}")
                    runtime.model = next_model
                    await world.turn(runtime)
                    sweep.check(
                        wait, how, world.offered_the_tools(next_model), f"next turn offered {next_model.offered}"
                    )
        sweep.check(wait, how, count_tasks() == baseline, f"{count_tasks() - baseline} task(s) left after the runtime")
        await wait_for_no_connections("the fake Coder", lambda: coder.open_connections)
    sweep.report()


# -- scenario 3: serve-mcp's building tools, their progress heartbeat beside the lifecycle's waits -------


async def _ignore_progress(progress: float, total: float | None, message: str | None) -> None:
    return None


@dataclass
class ServeMcpWorld:
    """A real MCP client, in process, asks serve-mcp to create a workspace and asks for progress: the
    lifecycle's waits run with the progress heartbeat beside them."""

    clock: MockClock
    fake: FakeCoder
    coder: ServedFakeCoder
    runs: Iterator[int] = field(default_factory=lambda: iter(range(1_000)))

    @contextlib.asynccontextmanager
    async def client(self) -> AsyncIterator[Client]:
        async with (
            CoderClient(self.coder.url, self.coder.token, clock=self.clock) as coder_client,
            Client(build_server(WorkspaceLifecycle(coder_client)), cache=None) as client,
        ):
            yield client

    async def create(self, client: Client) -> dict[str, Any]:
        arguments = {"template_id": self.fake.template_id("docker"), "name": f"serve-{next(self.runs)}"}
        result = await client.call_tool("create_workspace", arguments, progress_callback=_ignore_progress)
        return result.structured_content or {}

    async def record_waits(self) -> list[Tags]:
        async with self.client() as client:
            with anyio.fail_after(GUARD_S):
                async with self.clock.autojump():
                    return await record_waits(self.clock, lambda: self.create(client))


async def test_cancelling_a_serve_mcp_create_at_any_wait_leaves_nothing_behind(
    clock: MockClock, fake: FakeCoder, coder: ServedFakeCoder
) -> None:
    world = ServeMcpWorld(clock, fake, coder)
    waits = await world.record_waits()
    assert {clock_tags.SERVE_MCP_PROGRESS, clock_tags.CODER_BUILD_POLL} <= set(waits)

    sweep = Sweep()
    for wait, how in itertools.product(waits, cancellations()):
        baseline = count_tasks()
        async with world.client() as client:
            with anyio.fail_after(GUARD_S):
                async with clock.autojump():
                    before = count_tasks()
                    cancelled = await cancel_at(clock, wait, partial(world.create, client), how)
                    sweep.check_cancelled(wait, how, cancelled)
                    sweep.check(wait, how, count_tasks() == before, f"{count_tasks() - before} task(s) left")
                    answer = await world.create(client)
                    sweep.check(wait, how, answer.get("created") is True, f"the next create answered {answer}")
        sweep.check(wait, how, count_tasks() == baseline, f"{count_tasks() - baseline} task(s) left after the client")
        await wait_for_no_connections("the fake Coder", lambda: coder.open_connections)
    sweep.report()


# -- scenario 4: the gateway, serving an http server and one that refuses connections -----------------


@dataclass
class GatewayWorld:
    """The gateway connects a live http server and one that refuses connections (so it restarts), watches
    its config file, and routes a call from an in-process MCP client: every wait of the gateway."""

    clock: MockClock
    config: Path

    async def serve_once(self) -> str:
        async with Gateway([self.config], clock=self.clock) as gateway:
            while gateway.report().phase is not Phase.COMPLETE:
                await gateway.table.wait_report_changed()
            async with Client(gateway.server, cache=None) as client:
                result = await client.call_tool("docs__search", {"q": "x"})
            # A long poll of the report: held until it changes (the down server's restart) or a second passes.
            transport = httpx2.ASGITransport(app=gateway.app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://gateway") as http:
                first = await http.get("/discovery")
                held = await http.get(
                    "/discovery", headers={"If-None-Match": first.headers["etag"], "Prefer": "wait=1"}
                )
            await self.clock.wait_for_sleeper(*clock_tags.GATEWAY_RESTART)
            if held.status_code not in (200, 304):
                return f"the held report read answered {held.status_code}"
            return "ok" if not result.is_error else "error"

    def autojump(self) -> AbstractAsyncContextManager[None]:
        # The long poll's bound is a timeout nothing else ends: time may jump to it.
        return self.clock.autojump(expire=lambda tags: set(clock_tags.GATEWAY_REPORT_WAIT) <= set(tags))

    async def record_waits(self) -> list[Tags]:
        with anyio.fail_after(GUARD_S):
            async with self.autojump():
                return await record_waits(self.clock, self.serve_once)


def gateway_config(directory: Path, docs: WorkspaceMCPServer) -> Path:
    config = directory / ".mcp.json"
    refused = f"http://127.0.0.1:{free_port()}/mcp"
    config.write_text(json.dumps({"mcpServers": {"docs": {"url": docs.url}, "down": {"url": refused}}}))
    return config


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_cancelling_the_gateway_at_any_wait_leaves_nothing_behind(
    clock: MockClock, docs_server: WorkspaceMCPServer, tmp_path: Path
) -> None:
    world = GatewayWorld(clock, gateway_config(tmp_path, docs_server))
    waits = await world.record_waits()
    assert {clock_tags.GATEWAY_RESTART, clock_tags.GATEWAY_CONFIG_POLL} <= set(waits)

    sweep = Sweep()
    for wait, how in itertools.product(waits, cancellations()):
        with anyio.fail_after(GUARD_S):
            async with world.autojump():
                before = count_tasks()
                cancelled = await cancel_at(clock, wait, world.serve_once, how)
                sweep.check_cancelled(wait, how, cancelled)
                sweep.check(wait, how, count_tasks() == before, f"{count_tasks() - before} task(s) left")
                answer = await world.serve_once()
                sweep.check(wait, how, answer == "ok", f"the next run's call answered {answer}")
        await wait_for_no_connections("the docs server", lambda: docs_server.open_connections)
    sweep.report()


# -- scenario 5: two replicas on a shared cache in Redis, one listing for both ------------------------


@dataclass
class ReplicasWorld:
    """Two replicas (each its own `RedisToolCache` and hub, on one Redis) each run a chat's first step on a
    workspace whose server holds its listing until the listing's bound: one replica lists under a lease it
    renews, the other waits for it. First, the replicas' subscriptions are cut, so each feed reconnects."""

    clock: MockClock
    redis_url: str
    workspaces: InMemoryWorkspaces
    server: WorkspaceMCPServer

    async def serve_once(self) -> str:
        clients = [redis.asyncio.Redis.from_url(self.redis_url) for _ in range(2)]
        try:
            async with contextlib.AsyncExitStack() as stack:
                hubs, heard = [], [EventRecorder(), EventRecorder()]
                for client, recorder in zip(clients, heard, strict=True):
                    cache = await stack.enter_async_context(
                        RedisToolCache(client, scope="sweep", clock=self.clock, settings=SWEEP_REDIS)
                    )
                    hub = new_hub(cache, self.clock, recorder, discovery_timeout=SWEEP_LISTING_BOUND)
                    hubs.append(await stack.enter_async_context(hub))
                await clients[0].client_kill_filter(_type="pubsub")
                for recorder in heard:  # each feed lost its subscription, and pauses before it subscribes again
                    await recorder.wait_for("cache.unavailable", within=None)
                offered: list[int] = []

                async def first_step(hub: WorkspaceMcpHub, chat_id: str) -> None:
                    async with shared_turn(hub, self.workspaces, chat_id, READY) as turn:
                        offered.append(len(await turn.prepare_tools([]) or ()))

                async with anyio.create_task_group() as group:
                    for number, hub in enumerate(hubs):
                        group.start_soon(first_step, hub, f"chat-{number}")
            return "ok" if offered == [0, 0] else f"offered {offered}"
        finally:
            with anyio.CancelScope(shield=True):
                for client in clients:
                    await client.aclose()

    def autojump(self) -> AbstractAsyncContextManager[None]:
        # The held listing's bound, a lease's renewals and a waiting replica's looks end by time alone.
        timed = (clock_tags.MCP_LIST, clock_tags.CACHE_LEASE)
        return self.clock.autojump(expire=lambda tags: any(set(wait) <= set(tags) for wait in timed))

    async def record_waits(self) -> list[Tags]:
        with anyio.fail_after(GUARD_S):
            async with self.autojump():
                return await record_waits(self.clock, self.serve_once)

    async def leases_left(self) -> list[bytes]:
        """Leases in Redis once those a cancelled call may have left have run out (in real time, bounded)."""
        async with redis.asyncio.Redis.from_url(self.redis_url) as client:
            for _ in range(IDLE_POLLS):
                left: list[bytes] = await client.keys("*:lease:*")
                if not left:
                    break
                await anyio.sleep(IDLE_POLL_S)
        return left


# A lease outlives a holder cancelled mid-call by half a second of real time (Redis keeps its time), and
# is renewed a dozen times in the held listing's bound.
SWEEP_REDIS = RedisCacheSettings(lease_ttl=0.5)
SWEEP_LISTING_BOUND = 2.0


@pytest.fixture
def replicas_world(
    clock: MockClock, redis_server: RedisServer, workspaces: InMemoryWorkspaces
) -> Iterator[ReplicasWorld]:
    with WorkspaceMCPServer(echo_tools(*DOCS_TOOLS), name="docs", clock=clock, hang_listing=True) as server:
        workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
        yield ReplicasWorld(clock, redis_server.url, workspaces, server)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # the redis client runs on asyncio only
async def test_cancelling_replicas_on_a_shared_cache_at_any_wait_leaves_nothing_behind(
    replicas_world: ReplicasWorld,
) -> None:
    world = replicas_world
    waits = await world.record_waits()
    timed = {(*clock_tags.CACHE_LEASE, "timeout"), (*clock_tags.CACHE_CALL, "timeout")}
    assert {clock_tags.CACHE_RECONNECT, *timed} <= set(waits), waits

    sweep = Sweep()
    for wait, how in itertools.product(waits, cancellations()):
        with anyio.fail_after(GUARD_S):
            async with world.autojump():
                before = count_tasks()
                print("SWEEP", wait, how, flush=True)
                cancelled = await cancel_at(world.clock, wait, world.serve_once, how)
                sweep.check_cancelled(wait, how, cancelled)
                sweep.check(wait, how, count_tasks() == before, f"{count_tasks() - before} task(s) left")
                left = await world.leases_left()
                sweep.check(wait, how, not left, f"leases outlived their holders: {left}")
                answer = await world.serve_once()
                sweep.check(wait, how, answer == "ok", f"the next run answered {answer}")
        await wait_for_no_connections("the docs server", lambda: world.server.open_connections)
    sweep.report()


def library_wait_tags() -> dict[str, Tags]:
    """The tags of every wait of the library, all listed in `chat_mcp_primer.clock.tags`."""
    return {name: value for name, value in vars(clock_tags).items() if isinstance(value, tuple)}


def test_every_wait_tag_is_defined_in_one_public_place() -> None:
    """No module but `chat_mcp_primer.clock.tags` defines the tags of a wait, so that list is complete."""
    source = Path(chat_mcp_primer.__file__).parent
    defined_elsewhere = [
        f"{path.relative_to(source)}: {line.strip()}"
        for path in source.rglob("*.py")
        if path != source / "clock" / "tags.py"
        for line in path.read_text().splitlines()
        if re.match(r"^[A-Z_]*TAGS? = ", line)
    ]
    assert defined_elsewhere == []


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # which waits exist does not depend on the backend
async def test_every_tagged_wait_of_the_library_is_swept(
    clock: MockClock,
    workspaces: InMemoryWorkspaces,
    docs_server: WorkspaceMCPServer,
    fake: FakeCoder,
    coder: ServedFakeCoder,
    tmp_path: Path,
    replicas_world: ReplicasWorld,
) -> None:
    """A new kind of wait must be reached by one of the scenarios above, or this fails until one does."""
    swept = [
        *await replicas_world.record_waits(),
        *await InMemoryWorld(clock, workspaces, docs_server, shared=False).record_waits("chat-coverage"),
        *await CoderWorld(clock, fake, coder).record_waits(),
        *await ServeMcpWorld(clock, fake, coder).record_waits(),
        *await GatewayWorld(clock, gateway_config(tmp_path, docs_server)).record_waits(),
    ]
    constants = library_wait_tags()
    assert len(constants) >= 14  # the module holds the constants at all
    missed = {name: tags for name, tags in constants.items() if not any(set(tags) <= set(wait) for wait in swept)}
    assert not missed
