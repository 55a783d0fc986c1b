"""`CoderLifecycle`, the one lifecycle service: its typed outcomes, what its observer hears and in which order,
the adapters' shared descriptions, and the keyed locks they serialise with. Against FakeCoder over loopback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from mcp import Client

from chat_mcp_primer import ChatMcpPrimerError
from chat_mcp_primer._errors import ToolArgumentError
from chat_mcp_primer.cli.serve_mcp import WorkspaceLifecycle, build_server
from chat_mcp_primer.events import Events
from chat_mcp_primer.model import WorkspaceBinding
from chat_mcp_primer.testing import (
    EventRecorder,
    FakeAgent,
    FakeCoder,
    FakeTemplate,
    FakeVersion,
    MockClock,
    serve_fake_coder,
)
from chat_mcp_primer.tools import CHAT, LIFECYCLE_TOOLS, NAMED, CoderWorkspaces, describe
from chat_mcp_primer.workspace.coder import (
    Action,
    AgentReadiness,
    AgentState,
    CoderBackend,
    CoderClient,
    CoderError,
    CoderLifecycle,
    CreateRequest,
    FailureKind,
    KeyedLocks,
    LifecycleObserver,
    LifecycleOutcome,
    Operation,
    ReadinessSettings,
    Transition,
    Workspace,
    WorkspaceAgent,
    WorkspaceBuild,
)
from chat_mcp_primer.workspace_mcp import MemoryToolCache
from chat_mcp_primer.workspace_mcp._hub import WorkspaceMcpHub

pytestmark = pytest.mark.anyio

V1 = FakeVersion("v1", agents=[FakeAgent("main")])
V2 = FakeVersion("v2", agents=[FakeAgent("main")])
SILENT = FakeVersion("silent", agents=[FakeAgent("main", never_connects=True)])
BROKEN = FakeVersion("broken", import_error="terraform init failed")
DOCKER = FakeTemplate("docker", [V1, V2, SILENT, BROKEN], active_version="v1")
STRICT = FakeTemplate("strict", [V1, V2], active_version="v1", require_active_version=True)
LIFECYCLE_TOOL_NAMES = tuple(tool.spec.name for tool in LIFECYCLE_TOOLS)


class Heard(LifecycleObserver):
    """Every observer call, in order, as short tuples a test can compare."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def version_chosen(self, workspace: Workspace, version_id: str) -> None:
        self.calls.append(("version_chosen", version_id))

    def awaiting_build(self, workspace: Workspace, build: WorkspaceBuild) -> None:
        self.calls.append(("awaiting_build", build.transition.value))

    def build_joined(self, workspace: Workspace, build: WorkspaceBuild) -> None:
        self.calls.append(("build_joined", build.transition.value))

    def build_posted(self, workspace: Workspace, build: WorkspaceBuild) -> None:
        self.calls.append(("build_posted", build.transition.value))

    def agent_selected(self, workspace: Workspace, build: WorkspaceBuild, agent: WorkspaceAgent) -> None:
        self.calls.append(("agent_selected", agent.name))

    def agent_waited(self, agent: WorkspaceAgent, readiness: AgentReadiness, *, fresh: bool) -> None:
        self.calls.append(("agent_waited", f"{readiness.state.value} {'fresh' if fresh else 'found'}"))


class HeardProgress(Heard):
    """`Heard`, with the progress of the waited builds and agent, and the agent's connection, too."""

    def build_progress(self, workspace: Workspace, build: WorkspaceBuild) -> None:
        self.calls.append(("build_progress", f"{build.transition.value} {build.job.status.value}"))

    def agent_progress(self, workspace: Workspace, agent: WorkspaceAgent) -> None:
        self.calls.append(("agent_progress", f"{agent.status.value} {agent.lifecycle_state.value}"))

    def agent_connected(self, workspace: Workspace, agent: WorkspaceAgent) -> None:
        self.calls.append(("agent_connected", agent.name))


@dataclass
class World:
    clock: MockClock
    fake: FakeCoder
    client: CoderClient
    lifecycle: CoderLifecycle

    def workspace_id(self, name: str) -> str:
        workspace_id: str = self.fake.workspace(name)["id"]
        return workspace_id


@asynccontextmanager
async def served(clock: MockClock, *, old_coder: bool = False) -> AsyncIterator[World]:
    """The fake on loopback, a client and the lifecycle on ``clock``, time jumping through every wait.

    ``old_coder``: the deployment's workspaces do not name their template's active version (Coder before v2.1).
    """
    fake = FakeCoder(clock, templates=[DOCKER, STRICT], workspaces_name_active_version=not old_coder)
    with serve_fake_coder(fake) as coder:
        async with CoderClient(coder.url, coder.token, clock=clock) as client, clock.autojump():
            yield World(clock, fake, client, CoderLifecycle(client))


# -- the outcomes, and what the observer hears ---------------------------------------------------------


async def test_create_builds_and_waits_for_the_agent_telling_the_observer_build_then_agent(clock: MockClock) -> None:
    async with served(clock) as world:
        heard = Heard()
        request = CreateRequest(name="dev", template_id=world.fake.template_id("docker"))

        outcome = await world.lifecycle.create(request, observer=heard)

        assert (outcome.operation, outcome.action, outcome.ok) == (Operation.CREATE, Action.CREATED, True)
        assert outcome.workspace is not None
        assert outcome.workspace.name == "dev"
        assert outcome.build is not None
        assert outcome.build.id == world.fake.workspace("dev")["latest_build"]["id"]
        assert outcome.agent is not None
        assert outcome.agent.name == "main"
        assert outcome.readiness == AgentReadiness(AgentState.READY)
        assert heard.calls == [("build_posted", "start"), ("agent_selected", "main"), ("agent_waited", "ready fresh")]


async def create_heard(world: World) -> tuple[LifecycleOutcome, HeardProgress]:
    """Create workspace "dev" on the docker template's active version, heard by a `HeardProgress`."""
    heard = HeardProgress()
    request = CreateRequest(name="dev", template_id=world.fake.template_id("docker"))
    return await world.lifecycle.create(request, observer=heard), heard


async def test_the_observer_hears_each_build_status_and_agent_state_once_as_it_changes_in_order(
    clock: MockClock,
) -> None:
    async with served(clock) as world:
        outcome, heard = await create_heard(world)

        assert outcome.ok
        # FakeCoder's default timings against the 2 s polls: the build is read running twice (t = 2, 4) and
        # the agent starting twice (t = 8, 10), and each is heard once.
        assert heard.calls == [
            ("build_posted", "start"),
            ("build_progress", "start pending"),
            ("build_progress", "start running"),
            ("build_progress", "start succeeded"),
            ("agent_selected", "main"),
            ("agent_progress", "connecting created"),
            ("agent_progress", "connected starting"),
            ("agent_connected", "main"),
            ("agent_progress", "connected ready"),
            ("agent_waited", "ready fresh"),
        ]


async def test_the_observer_hears_a_failed_builds_progress_up_to_its_failure(clock: MockClock) -> None:
    async with served(clock) as world:
        world.fake.fail_next_build("out of quota", "INSUFFICIENT_QUOTA")
        outcome, heard = await create_heard(world)

        assert outcome.failure is not None
        assert outcome.failure.kind is FailureKind.BUILD_FAILED
        assert heard.calls == [
            ("build_posted", "start"),
            ("build_progress", "start pending"),
            ("build_progress", "start running"),
            ("build_progress", "start failed"),
        ]


async def test_the_observer_hears_an_agent_that_never_connects_time_out(clock: MockClock) -> None:
    async with served(clock) as world:
        world.fake.set_active_version("docker", "silent")

        outcome, heard = await create_heard(world)

        assert outcome.readiness is not None
        assert outcome.readiness.state is AgentState.NOT_CONNECTED
        agent_calls = [entry for entry in heard.calls if entry[0].startswith("agent")]
        assert agent_calls == [
            ("agent_selected", "main"),
            ("agent_progress", "connecting created"),
            ("agent_progress", "timeout created"),  # Coder gave up on it; the wait ran out its own budget
            ("agent_waited", "not_ready fresh"),
        ]


async def test_a_restart_tells_the_progress_of_its_stop_build_then_of_its_start_build(clock: MockClock) -> None:
    async with served(clock) as world:
        world.fake.create_workspace("dev", "docker", state="running")
        heard = HeardProgress()

        outcome = await world.lifecycle.restart(world.workspace_id("dev"), observer=heard)

        assert outcome.ok
        builds = [entry for entry in heard.calls if entry[0].startswith("build")]
        assert builds == [
            ("build_posted", "stop"),
            ("build_progress", "stop pending"),
            ("build_progress", "stop running"),
            ("build_progress", "stop succeeded"),
            ("build_posted", "start"),
            ("build_progress", "start pending"),
            ("build_progress", "start running"),
            ("build_progress", "start succeeded"),
        ]


async def test_create_reuses_the_chats_running_workspace_without_a_build(clock: MockClock) -> None:
    async with served(clock) as world:
        world.fake.create_workspace("dev", "docker", state="running")
        heard = Heard()
        request = CreateRequest(name="other", template_id=world.fake.template_id("docker"))

        outcome = await world.lifecycle.create(request, reuse=world.workspace_id("dev"), observer=heard)

        assert (outcome.action, outcome.ok) == (Action.ALREADY_RUNNING, True)
        assert world.fake.builds_created == 0
        assert heard.calls == [("agent_selected", "main"), ("agent_waited", "ready found")]


async def test_create_on_the_chats_stopped_workspace_is_a_not_running_failure(clock: MockClock) -> None:
    async with served(clock) as world:
        world.fake.create_workspace("dev", "docker", state="stopped")
        request = CreateRequest(name="other", template_id=world.fake.template_id("docker"))

        outcome = await world.lifecycle.create(request, reuse=world.workspace_id("dev"))

        assert outcome.failure is not None
        assert outcome.failure.kind is FailureKind.NOT_RUNNING
        assert world.fake.builds_created == 0


async def test_start_joins_a_start_in_progress_instead_of_posting_another(clock: MockClock) -> None:
    async with served(clock) as world:
        world.fake.create_workspace("dev", "docker", state="starting")
        heard = Heard()

        outcome = await world.lifecycle.start(world.workspace_id("dev"), observer=heard)

        assert (outcome.action, outcome.ok) == (Action.ALREADY_BUILDING, True)
        assert world.fake.builds_created == 0
        assert heard.calls == [("build_joined", "start"), ("agent_selected", "main"), ("agent_waited", "ready found")]


async def test_start_on_a_running_workspace_still_waits_for_its_agent(clock: MockClock) -> None:
    async with served(clock) as world:
        world.fake.create_workspace("dev", "docker", state="running")
        heard = Heard()

        outcome = await world.lifecycle.start(world.workspace_id("dev"), observer=heard)

        assert (outcome.action, outcome.readiness) == (Action.ALREADY_RUNNING, AgentReadiness(AgentState.READY))
        assert heard.calls == [("agent_selected", "main"), ("agent_waited", "ready found")]


async def test_stop_waits_for_a_start_in_progress_then_stops(clock: MockClock) -> None:
    async with served(clock) as world:
        world.fake.create_workspace("dev", "docker", state="starting")
        heard = Heard()

        outcome = await world.lifecycle.stop(world.workspace_id("dev"), observer=heard)

        assert (outcome.action, outcome.ok) == (Action.STOPPED, True)
        assert outcome.build is not None
        assert outcome.build.transition is Transition.STOP
        assert outcome.readiness is None  # a stop never waits for an agent
        assert heard.calls == [("awaiting_build", "start"), ("build_posted", "stop")]
        assert world.fake.workspace("dev")["latest_build"]["status"] == "stopped"


async def test_stop_of_a_stopped_workspace_does_nothing(clock: MockClock) -> None:
    async with served(clock) as world:
        world.fake.create_workspace("dev", "docker", state="stopped")
        heard = Heard()

        outcome = await world.lifecycle.stop(world.workspace_id("dev"), observer=heard)

        assert (outcome.action, outcome.ok, outcome.build) == (Action.ALREADY_STOPPED, True, None)
        assert heard.calls == []
        assert world.fake.builds_created == 0


async def test_restart_posts_a_stop_then_a_start_and_waits_for_the_new_agent(clock: MockClock) -> None:
    async with served(clock) as world:
        world.fake.create_workspace("dev", "docker", state="running")
        heard = Heard()

        outcome = await world.lifecycle.restart(world.workspace_id("dev"), observer=heard)

        assert (outcome.action, outcome.ok) == (Action.RESTARTED, True)
        assert outcome.stop_build is not None
        assert outcome.build is not None
        assert (outcome.stop_build.transition, outcome.build.transition) == (Transition.STOP, Transition.START)
        assert heard.calls == [
            ("build_posted", "stop"),
            ("build_posted", "start"),
            ("agent_selected", "main"),
            ("agent_waited", "ready fresh"),
        ]


async def test_update_names_the_version_first_then_stops_and_starts_on_it(clock: MockClock) -> None:
    async with served(clock) as world:
        world.fake.create_workspace("dev", "docker", state="running")
        v2 = world.fake.version_id("docker", "v2")
        heard = Heard()

        outcome = await world.lifecycle.update(world.workspace_id("dev"), v2, observer=heard)

        assert (outcome.action, outcome.ok, outcome.template_version_id) == (Action.UPDATED, True, v2)
        assert heard.calls[0] == ("version_chosen", v2)
        assert heard.calls[1:3] == [("build_posted", "stop"), ("build_posted", "start")]
        assert world.fake.workspace("dev")["latest_build"]["template_version_id"] == v2


async def test_update_to_the_version_already_running_is_up_to_date_and_builds_nothing(clock: MockClock) -> None:
    async with served(clock) as world:
        world.fake.create_workspace("dev", "docker", state="running")

        outcome = await world.lifecycle.update(world.workspace_id("dev"))

        assert (outcome.action, outcome.ok) == (Action.UP_TO_DATE, True)
        assert outcome.template_version_id == world.fake.version_id("docker", "v1")
        assert outcome.readiness == AgentReadiness(AgentState.READY)
        assert world.fake.builds_created == 0


async def test_forced_update_rebuilds_a_workspace_already_on_the_version(clock: MockClock) -> None:
    async with served(clock) as world:
        world.fake.create_workspace("dev", "docker", state="running")

        outcome = await world.lifecycle.update(world.workspace_id("dev"), force=True)

        assert (outcome.action, outcome.ok) == (Action.UPDATED, True)
        assert world.fake.builds_created == 2


async def test_refused_version_is_a_failure_before_anything_is_built(clock: MockClock) -> None:
    async with served(clock) as world:
        world.fake.create_workspace("dev", "docker", state="running")

        outcome = await world.lifecycle.update(world.workspace_id("dev"), world.fake.version_id("docker", "broken"))

        assert outcome.failure is not None
        assert outcome.failure.kind is FailureKind.VERSION_REFUSED
        assert "failed to import" in outcome.failure.message
        assert world.fake.builds_created == 0


# -- failure outcomes ------------------------------------------------------------------------------------


async def test_a_failed_build_is_a_failure_with_its_build_and_job_error_and_no_agent_wait(clock: MockClock) -> None:
    async with served(clock) as world:
        world.fake.fail_next_build("out of quota", "INSUFFICIENT_QUOTA")
        heard = Heard()

        outcome = await world.lifecycle.create(
            CreateRequest(name="dev", template_id=world.fake.template_id("docker")), observer=heard
        )

        assert outcome.failure is not None
        assert (outcome.failure.kind, outcome.failure.transition) == (FailureKind.BUILD_FAILED, Transition.START)
        assert outcome.failure.build_id == world.fake.workspace("dev")["latest_build"]["id"]
        assert (outcome.failure.job_error, outcome.failure.error_code) == ("out of quota", "INSUFFICIENT_QUOTA")
        assert outcome.readiness is None
        assert heard.calls == [("build_posted", "start")]


async def test_a_failed_stop_ends_the_update_without_a_start(clock: MockClock) -> None:
    async with served(clock) as world:
        world.fake.create_workspace("dev", "docker", state="running")
        world.fake.fail_next_build("stop failed", transition="stop")

        outcome = await world.lifecycle.update(world.workspace_id("dev"), world.fake.version_id("docker", "v2"))

        assert outcome.failure is not None
        assert (outcome.failure.kind, outcome.failure.transition) == (FailureKind.BUILD_FAILED, Transition.STOP)
        assert world.fake.builds_created == 1


async def test_an_agent_that_never_connects_is_reported_not_ready_and_still_heard(clock: MockClock) -> None:
    async with served(clock) as world:
        world.fake.create_workspace("dev", "docker", state="running")
        heard = Heard()

        outcome = await world.lifecycle.update(
            world.workspace_id("dev"), world.fake.version_id("docker", "silent"), observer=heard
        )

        assert outcome.ok  # the build succeeded; the agent's readiness is reported, not a failure
        assert outcome.readiness is not None
        assert outcome.readiness.state is AgentState.NOT_CONNECTED
        assert outcome.readiness.error
        assert heard.calls[-1] == ("agent_waited", "not_ready fresh")
        assert world.clock.now() >= ReadinessSettings().agent_online_timeout


async def test_a_deleted_workspace_is_a_deleted_failure_and_nothing_is_done(clock: MockClock) -> None:
    async with served(clock) as world:
        world.fake.create_workspace("gone", "docker", state="deleted")

        outcome = await world.lifecycle.start(world.workspace_id("gone"))

        assert outcome.failure is not None
        assert (outcome.failure.kind, outcome.action) == (FailureKind.DELETED, Action.NOTHING)
        assert world.fake.builds_created == 0


# -- a template whose active version the workspace does not name (Coder before v2.1) ----------------------


async def test_update_reads_the_active_version_from_the_template_when_the_workspace_omits_it(clock: MockClock) -> None:
    async with served(clock, old_coder=True) as old_coder:
        old_coder.fake.create_workspace("dev", "docker", state="running")
        old_coder.fake.set_active_version("docker", "v2")

        outcome = await old_coder.lifecycle.update(old_coder.workspace_id("dev"))

        v2 = old_coder.fake.version_id("docker", "v2")
        assert (outcome.action, outcome.template_version_id) == (Action.UPDATED, v2)
        assert old_coder.fake.workspace("dev")["latest_build"]["template_version_id"] == v2


async def test_the_chat_tools_handle_a_workspace_that_omits_the_active_version(clock: MockClock) -> None:
    async with served(clock, old_coder=True) as old_coder:
        old_coder.fake.create_workspace("dev", "docker", state="running")
        old_coder.fake.set_active_version("docker", "v2")
        old_coder.fake.create_workspace("strict", "strict", state="stopped")
        old_coder.fake.set_active_version("strict", "v2")

        async with chat_turn(old_coder, "dev") as tools:
            updated = await call(tools, "update_workspace")
        async with chat_turn(old_coder, "strict") as tools:
            started = await call(tools, "start_workspace")

        assert updated["updated"] is True
        assert updated["template_version_id"] == old_coder.fake.version_id("docker", "v2")
        assert started["updated_to_active_version"] is True
        strict_build = old_coder.fake.workspace("strict")["latest_build"]
        assert strict_build["template_version_id"] == old_coder.fake.version_id("strict", "v2")


# -- the chat's tools: results and locks -------------------------------------------------------------------


@asynccontextmanager
async def chat_turn(
    world: World, workspace: str | None = None, *, tools: CoderWorkspaces | None = None
) -> AsyncIterator[dict[str, Any]]:
    binding = WorkspaceBinding(world.workspace_id(workspace)) if workspace is not None else None
    backend = CoderBackend(world.client)
    hub = WorkspaceMcpHub(cache=MemoryToolCache(), clock=world.clock, events=Events(world.clock.now, EventRecorder()))
    async with hub, hub.turn(chat_id="chat-1", binding=binding, source=backend) as turn:
        built = (tools or CoderWorkspaces(backend)).provisioning_tools(turn)
        yield {tool.spec.name: tool for tool in built}


async def call(tools: dict[str, Any], tool: str, /, **arguments: Any) -> dict[str, Any]:
    result = await tools[tool].call(arguments)
    decoded: dict[str, Any] = json.loads(result.text)
    assert result.is_error == ("error" in decoded)
    return decoded


async def test_the_chat_tool_says_up_to_date_and_does_not_rebuild(clock: MockClock) -> None:
    async with served(clock) as world:
        world.fake.create_workspace("dev", "docker", state="running")

        async with chat_turn(world, "dev") as tools:
            result = await call(tools, "update_workspace")

        assert (result["updated"], result["up_to_date"]) == (True, True)
        assert world.fake.builds_created == 0


async def test_two_turns_of_one_chat_are_serialised_and_the_lock_map_empties(clock: MockClock) -> None:
    async with served(clock) as world:
        shared = CoderWorkspaces(CoderBackend(world.client))
        template_id = world.fake.template_id("docker")
        results: list[dict[str, Any]] = []

        async def create_in_a_turn(name: str) -> None:
            async with chat_turn(world, tools=shared) as tools:
                results.append(await call(tools, "create_workspace", template_id=template_id, name=name))

        async with anyio.create_task_group() as group:
            group.start_soon(create_in_a_turn, "first")
            group.start_soon(create_in_a_turn, "second")

        assert all(result["created"] is True for result in results)
        # Serialised: whichever came second started only after the other had finished: no overlapping builds.
        jobs = sorted(
            (world.fake.builds(name)[0]["job"] for name in ("first", "second")), key=lambda j: j["created_at"]
        )
        assert jobs[0]["completed_at"] <= jobs[1]["created_at"]
        assert len(shared.locks) == 0


# -- serve-mcp: the same service, descriptions and renderer ------------------------------------------------


async def test_serve_mcp_update_of_an_up_to_date_workspace_says_so_and_does_not_rebuild(clock: MockClock) -> None:
    async with served(clock) as world:
        world.fake.create_workspace("dev", "docker", state="running")
        lifecycle = WorkspaceLifecycle(world.client)

        result = await lifecycle.update_workspace("dev", None)

        assert (result["updated"], result["up_to_date"]) == (True, True)
        assert world.fake.builds_created == 0
        assert len(lifecycle.locks) == 0


async def test_serve_mcp_serialises_calls_on_one_workspace_and_drops_the_lock_after(clock: MockClock) -> None:
    async with served(clock) as world:
        world.fake.create_workspace("dev", "docker", state="stopped")
        lifecycle = WorkspaceLifecycle(world.client)
        results: list[dict[str, Any]] = []

        async def start() -> None:
            results.append(await lifecycle.start_workspace("dev"))

        async with anyio.create_task_group() as group:
            group.start_soon(start)
            group.start_soon(start)

        assert sorted(result.get("already_running", False) for result in results) == [False, True]
        assert world.fake.builds_created == 1  # the second call found the first one's workspace running
        assert len(lifecycle.locks) == 0


async def test_a_blank_workspace_reference_is_an_argument_error_not_a_coder_error(clock: MockClock) -> None:
    async with served(clock) as world:
        lifecycle = WorkspaceLifecycle(world.client)

        with pytest.raises(ToolArgumentError) as raised:
            await lifecycle.find("   ")

        assert isinstance(raised.value, ChatMcpPrimerError)
        assert not isinstance(raised.value, CoderError)


async def test_the_chat_tools_and_serve_mcp_describe_each_tool_with_the_same_text(clock: MockClock) -> None:
    async with served(clock) as world:
        async with chat_turn(world) as tools:
            chat = {name: tool.spec.description for name, tool in tools.items()}
        async with Client(build_server(WorkspaceLifecycle(world.client)), cache=None) as client:
            listed = {tool.name: tool.description for tool in (await client.list_tools()).tools}

        for name in LIFECYCLE_TOOL_NAMES:
            assert chat[name] == describe(name, CHAT)
            assert listed[name] == describe(name, NAMED)
        for name in ("start_workspace", "stop_workspace", "restart_workspace", "update_workspace"):
            # One text; only the workspace it acts on differs.
            assert chat[name].replace(CHAT.workspace, NAMED.workspace) == listed[name]


# -- the keyed locks on their own ---------------------------------------------------------------------------


async def test_keyed_locks_serialise_one_key_let_others_run_and_forget_keys_nobody_uses() -> None:
    locks = KeyedLocks()
    order: list[str] = []
    first_holds = anyio.Event()
    release_first = anyio.Event()

    async def first() -> None:
        async with locks.hold("chat-1"):
            order.append("first in")
            first_holds.set()
            await release_first.wait()
            order.append("first out")

    async def second() -> None:
        await first_holds.wait()
        async with locks.hold("chat-1"):
            order.append("second in")

    async def other() -> None:
        await first_holds.wait()
        async with locks.hold("chat-2"):
            order.append("other in")
        release_first.set()

    async with anyio.create_task_group() as group:
        group.start_soon(first)
        group.start_soon(second)
        group.start_soon(other)

    assert order == ["first in", "other in", "first out", "second in"]
    assert len(locks) == 0


async def test_a_caller_cancelled_while_waiting_leaves_no_lock_behind() -> None:
    locks = KeyedLocks()
    waiting = anyio.Event()

    async def impatient(scope: anyio.CancelScope) -> None:
        with scope:
            waiting.set()
            async with locks.hold("chat-1"):
                pytest.fail("the key is held by the test")

    async with locks.hold("chat-1"):
        async with anyio.create_task_group() as group:
            scope = anyio.CancelScope()
            group.start_soon(impatient, scope)
            await waiting.wait()
            await anyio.wait_all_tasks_blocked()  # the impatient caller is waiting for the lock
            scope.cancel()
        assert len(locks) == 1  # the holder only
    assert len(locks) == 0
