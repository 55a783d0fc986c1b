"""Every path of every workspace lifecycle tool, against FakeCoder over real loopback HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import pytest

from chat_mcp_primer.events import Events
from chat_mcp_primer.model import Tool, WorkspaceBinding
from chat_mcp_primer.testing import (
    EventRecorder,
    FakeAgent,
    FakeCoder,
    FakeMcpServer,
    FakeTemplate,
    FakeVersion,
    MockClock,
    ServedFakeCoder,
    echo_tools,
)
from chat_mcp_primer.tools import CoderWorkspaces
from chat_mcp_primer.workspace.coder import CoderBackend, CoderClient, ReadinessSettings
from chat_mcp_primer.workspace_mcp import MemoryToolCache, TurnWorkspace
from chat_mcp_primer.workspace_mcp._hub import WorkspaceMcpHub

pytestmark = pytest.mark.anyio

V1 = FakeVersion("v1", agents=[FakeAgent("main", mcp_servers=[FakeMcpServer(tools=echo_tools("search"))])])
V2 = FakeVersion("v2", agents=[FakeAgent("main", mcp_servers=[FakeMcpServer(tools=echo_tools("search_v2"))])])
BROKEN = FakeVersion("broken", import_error="terraform init failed")
TWO_CHAT_AGENTS = FakeVersion("two-chat", agents=[FakeAgent("a-coderd-chat"), FakeAgent("b-coderd-chat")])
PICKY = FakeVersion("picky", agents=[FakeAgent("main"), FakeAgent("helper-coderd-chat")])
SILENT = FakeVersion("silent", agents=[FakeAgent("main", never_connects=True)])
CRASHING = FakeVersion("crashing", agents=[FakeAgent("main", startup_outcome="start_error")])
DOCKER = FakeTemplate("docker", [V1, V2, BROKEN], active_version="v1")
OTHER = FakeTemplate("other", [FakeVersion("o1")])
ODD = FakeTemplate("odd", [TWO_CHAT_AGENTS, PICKY, SILENT, CRASHING], active_version="two-chat")


@dataclass
class World:
    clock: MockClock
    fake: FakeCoder
    backend: CoderBackend
    events: EventRecorder


@pytest.fixture
def fake(clock: MockClock) -> FakeCoder:
    return FakeCoder(clock, templates=[DOCKER, OTHER, ODD])


@pytest.fixture
async def world(
    clock: MockClock, fake: FakeCoder, coder: ServedFakeCoder, event_log: EventRecorder
) -> AsyncIterator[World]:
    async with CoderClient(coder.url, coder.token, clock=clock) as client:
        yield World(clock, fake, CoderBackend(client), event_log)


class Turn:
    """One turn's lifecycle tools, called by name; results decoded from their JSON."""

    def __init__(self, turn: TurnWorkspace, tools: Mapping[str, Tool]) -> None:
        self.workspace = turn
        self.tools = tools

    async def call(self, tool: str, /, **arguments: Any) -> dict[str, Any]:
        result = await self.tools[tool].call(arguments)
        decoded: dict[str, Any] = json.loads(result.text)
        assert result.is_error == ("error" in decoded)
        return decoded


@asynccontextmanager
async def turn(world: World, binding: WorkspaceBinding | None = None) -> AsyncIterator[Turn]:
    """A turn on the world's clock, with the clock jumping through every build, poll and pause."""
    hub = WorkspaceMcpHub(cache=MemoryToolCache(), clock=world.clock, events=Events(world.clock.now, world.events))
    async with (
        world.clock.autojump(),
        hub,
        hub.turn(chat_id="chat-1", binding=binding, source=world.backend) as workspace,
    ):
        tools = {tool.spec.name: tool for tool in CoderWorkspaces(world.backend).provisioning_tools(workspace)}
        yield Turn(workspace, tools)


def bound_to(world: World, workspace: str) -> WorkspaceBinding:
    return WorkspaceBinding(world.fake.workspace(workspace)["id"])


def agent_ids(world: World, workspace: str) -> list[str]:
    build = world.fake.workspace(workspace)["latest_build"]
    return [agent["id"] for resource in build["resources"] for agent in resource["agents"]]


# -- list_templates ---------------------------------------------------------------------------------


async def test_list_templates_names_every_template(world: World) -> None:
    async with turn(world) as t:
        result = await t.call("list_templates")
    assert sorted(template["name"] for template in result["templates"]) == ["docker", "odd", "other"]


# -- create_workspace -------------------------------------------------------------------------------


async def test_create_workspace_builds_waits_for_the_agent_binds_the_chat_and_starts_the_primer(world: World) -> None:
    async with turn(world) as t:
        result = await t.call("create_workspace", template_id=world.fake.template_id("docker"), name="dev")
        binding = t.workspace.binding
    assert result["created"] is True
    assert result["workspace_name"] == "dev"
    assert "agent_status" not in result
    assert "startup_scripts" not in result
    assert binding is not None
    assert binding.build_id == result["build_id"]
    assert binding.agent_id == agent_ids(world, "dev")[0]
    assert world.events.named("primer.started")
    updates = world.events.named("chat.updated")
    assert updates[0].fields["agent_id"] is None  # bound to the build at once, agent unbound
    assert updates[-1].fields["agent_id"] == binding.agent_id


async def test_create_workspace_without_template_id_is_a_clear_error(world: World) -> None:
    async with turn(world) as t:
        result = await t.call("create_workspace")
    assert "list_templates" in result["error"]


async def test_create_workspace_with_a_template_id_that_is_not_a_uuid_says_so_before_coder_is_asked(
    world: World,
) -> None:
    async with turn(world) as t:
        result = await t.call("create_workspace", template_id="docker", name="dev")
    assert result["error"] == "template_id must be a UUID (call list_templates to find one), got 'docker'"
    assert world.fake.builds_created == 0


async def test_create_workspace_with_a_taken_name_is_an_error_result(world: World) -> None:
    world.fake.create_workspace("dev", "docker")
    async with turn(world) as t:
        result = await t.call("create_workspace", template_id=world.fake.template_id("docker"), name="dev")
    assert "already exists" in result["error"]


async def test_create_workspace_reuses_a_running_workspace_and_still_primes(world: World) -> None:
    world.fake.create_workspace("dev", "docker", state="running")
    async with turn(world, bound_to(world, "dev")) as t:
        result = await t.call("create_workspace", template_id=world.fake.template_id("docker"))
    assert result["created"] is False
    assert result["already_running"] is True
    assert world.fake.builds_created == 0
    assert world.events.named("primer.started")


async def test_create_workspace_waits_for_a_build_in_progress(world: World) -> None:
    world.fake.create_workspace("dev", "docker", state="starting")
    async with turn(world, bound_to(world, "dev")) as t:
        result = await t.call("create_workspace", template_id=world.fake.template_id("docker"))
    assert result["created"] is False
    assert result["already_building"] is True
    assert world.fake.builds_created == 0
    assert world.events.named("primer.started")  # upstream gap 1: this path primes too


async def test_create_workspace_on_a_stopped_workspace_points_to_start_workspace(world: World) -> None:
    world.fake.create_workspace("dev", "docker", state="stopped")
    async with turn(world, bound_to(world, "dev")) as t:
        result = await t.call("create_workspace", template_id=world.fake.template_id("docker"))
    assert "start_workspace" in result["error"]
    assert world.fake.builds_created == 0


async def test_create_workspace_replaces_a_deleted_workspace(world: World) -> None:
    world.fake.create_workspace("old", "docker", state="deleted")
    binding = WorkspaceBinding(world.fake.workspace("old")["id"])
    async with turn(world, binding) as t:
        result = await t.call("create_workspace", template_id=world.fake.template_id("docker"), name="fresh")
        assert t.workspace.binding is not None
        assert t.workspace.binding.workspace_id != binding.workspace_id
    assert result["created"] is True


async def test_failed_build_returns_its_build_id_and_job_error(world: World) -> None:
    world.fake.fail_next_build("out of quota", "INSUFFICIENT_QUOTA")
    async with turn(world) as t:
        result = await t.call("create_workspace", template_id=world.fake.template_id("docker"), name="dev")
    assert result["created"] is False
    assert result["build_id"] == world.fake.workspace("dev")["latest_build"]["id"]
    assert result["job_error"] == "out of quota"
    assert result["error_code"] == "INSUFFICIENT_QUOTA"
    assert not world.events.named("primer.started")


async def test_prefers_the_coderd_chat_agent(world: World) -> None:
    world.fake.set_active_version("odd", "picky")
    async with turn(world) as t:
        await t.call("create_workspace", template_id=world.fake.template_id("odd"), name="dev")
        binding = t.workspace.binding
    build = world.fake.workspace("dev")["latest_build"]
    chat_agent = next(a for r in build["resources"] for a in r["agents"] if a["name"] == "helper-coderd-chat")
    assert binding is not None
    assert binding.agent_id == chat_agent["id"]


async def test_two_coderd_chat_agents_give_a_selection_error_without_waiting(world: World) -> None:
    async with turn(world) as t:
        result = await t.call("create_workspace", template_id=world.fake.template_id("odd"), name="dev")
        finished_at = world.clock.now()
    assert result["agent_status"] == "selection_error"
    assert "several agents" in result["agent_error"]
    assert finished_at == 6.0  # queue 1 s + build 5 s: no agent wait at all


async def test_agent_that_never_connects_is_not_ready_after_the_online_budget(world: World) -> None:
    world.fake.set_active_version("odd", "silent")
    async with turn(world) as t:
        result = await t.call("create_workspace", template_id=world.fake.template_id("odd"), name="dev")
        finished_at = world.clock.now()
    assert result["agent_status"] == "not_ready"
    assert result["agent_error"]
    assert finished_at == 6.0 + ReadinessSettings().agent_online_timeout


async def test_startup_script_error_is_reported_with_its_lifecycle_state(world: World) -> None:
    world.fake.set_active_version("odd", "crashing")
    async with turn(world) as t:
        result = await t.call("create_workspace", template_id=world.fake.template_id("odd"), name="dev")
    assert result["startup_scripts"] == "startup_scripts_failed"
    assert result["lifecycle_state"] == "start_error"
    assert world.events.named("primer.started")  # notified whatever the readiness outcome


# -- start_workspace --------------------------------------------------------------------------------


async def test_start_workspace_without_a_workspace_says_to_create_one(world: World) -> None:
    async with turn(world) as t:
        result = await t.call("start_workspace")
    assert "create_workspace first" in result["error"]


async def test_start_workspace_of_a_deleted_workspace_is_a_clear_error(world: World) -> None:
    world.fake.create_workspace("gone", "docker", state="deleted")
    async with turn(world, WorkspaceBinding(world.fake.workspace("gone")["id"])) as t:
        result = await t.call("start_workspace")
    assert "deleted" in result["error"]


async def test_start_workspace_starts_a_stopped_workspace_with_a_new_agent(world: World) -> None:
    world.fake.create_workspace("dev", "docker", state="stopped")
    async with turn(world, bound_to(world, "dev")) as t:
        result = await t.call("start_workspace")
        binding = t.workspace.binding
    assert result["started"] is True
    assert binding is not None
    assert binding.agent_id == agent_ids(world, "dev")[0]
    assert world.events.named("primer.started")


async def test_start_workspace_on_a_running_workspace_primes_without_a_build(world: World) -> None:
    world.fake.create_workspace("dev", "docker", state="running")
    async with turn(world, bound_to(world, "dev")) as t:
        result = await t.call("start_workspace")
    assert result == {
        "started": True,
        "already_running": True,
        "workspace_name": "dev",
        "build_id": world.fake.workspace("dev")["latest_build"]["id"],
    }
    assert world.fake.builds_created == 0
    assert world.events.named("primer.started")  # upstream gap 1 closed


async def test_start_workspace_waits_for_a_build_in_progress(world: World) -> None:
    world.fake.create_workspace("dev", "docker", state="pending")
    async with turn(world, bound_to(world, "dev")) as t:
        result = await t.call("start_workspace")
    assert result["started"] is True
    assert world.fake.builds_created == 0


async def test_start_workspace_moves_to_the_active_version_when_the_template_requires_it(world: World) -> None:
    world.fake.add_template(FakeTemplate("strict", [V1, V2], active_version="v1", require_active_version=True))
    world.fake.create_workspace("dev", "strict", state="stopped")
    world.fake.set_active_version("strict", "v2")
    async with turn(world, bound_to(world, "dev")) as t:
        result = await t.call("start_workspace")
    assert result["updated_to_active_version"] is True
    assert world.fake.workspace("dev")["latest_build"]["template_version_id"] == world.fake.version_id("strict", "v2")


# -- stop_workspace ---------------------------------------------------------------------------------


async def test_stop_workspace_stops_and_unbinds_the_agent(world: World) -> None:
    world.fake.create_workspace("dev", "docker", state="running")
    async with turn(world, bound_to(world, "dev")) as t:
        result = await t.call("stop_workspace")
        binding = t.workspace.binding
    assert result["stopped"] is True
    assert binding is not None
    assert binding.agent_id is None
    assert world.fake.workspace("dev")["latest_build"]["status"] == "stopped"
    assert not world.events.named("primer.started")


async def test_stop_workspace_on_a_stopped_workspace_makes_no_build(world: World) -> None:
    world.fake.create_workspace("dev", "docker", state="stopped")
    async with turn(world, bound_to(world, "dev")) as t:
        result = await t.call("stop_workspace")
    assert result == {"stopped": True, "no_build": True, "workspace_name": "dev"}
    assert world.fake.builds_created == 0


async def test_stop_workspace_waits_for_a_start_in_progress_instead_of_hitting_409(world: World) -> None:
    world.fake.create_workspace("dev", "docker", state="starting")
    async with turn(world, bound_to(world, "dev")) as t:
        result = await t.call("stop_workspace")
    assert result["stopped"] is True


# -- restart_workspace ------------------------------------------------------------------------------


async def test_restart_returns_the_workspace_not_the_build_and_a_new_agent(world: World) -> None:
    world.fake.create_workspace("dev", "docker", state="running")
    old_agent = agent_ids(world, "dev")[0]
    async with turn(world, bound_to(world, "dev")) as t:
        result = await t.call("restart_workspace")
        binding = t.workspace.binding
    assert result["restarted"] is True
    assert result["workspace_name"] == "dev"  # the seed client reported "unknown" here
    assert binding is not None
    assert binding.agent_id not in (None, old_agent)
    assert world.fake.builds_created == 2  # stop, then start
    assert world.events.named("primer.started")


# -- update_workspace -------------------------------------------------------------------------------


async def test_update_moves_to_the_active_version_by_default(world: World) -> None:
    world.fake.create_workspace("dev", "docker", state="running")
    world.fake.set_active_version("docker", "v2")
    async with turn(world, bound_to(world, "dev")) as t:
        result = await t.call("update_workspace")
    v2 = world.fake.version_id("docker", "v2")
    assert result["updated"] is True
    assert result["template_version_id"] == v2
    assert world.fake.workspace("dev")["latest_build"]["template_version_id"] == v2
    assert world.events.named("primer.started")


async def test_update_to_an_explicit_version(world: World) -> None:
    world.fake.create_workspace("dev", "docker", state="running")
    v2 = world.fake.version_id("docker", "v2")
    async with turn(world, bound_to(world, "dev")) as t:
        result = await t.call("update_workspace", template_version_id=v2)
    assert result["updated"] is True
    assert world.fake.workspace("dev")["latest_build"]["template_version_id"] == v2


@pytest.mark.parametrize(
    ("version", "reason"),
    [
        ("00000000-0000-4000-8000-000000000000", "does not exist"),
        ("other/o1", "belongs to another template"),
        ("docker/broken", "failed to import"),
    ],
)
async def test_update_refuses_a_version_it_cannot_use_and_builds_nothing(
    world: World, version: str, reason: str
) -> None:
    world.fake.create_workspace("dev", "docker", state="running")
    if "/" in version:
        template, name = version.split("/")
        version = world.fake.version_id(template, name)
    async with turn(world, bound_to(world, "dev")) as t:
        result = await t.call("update_workspace", template_version_id=version)
    assert result["updated"] is False
    assert reason in result["error"]
    assert world.fake.builds_created == 0


async def test_a_failed_stop_aborts_the_update(world: World) -> None:
    world.fake.create_workspace("dev", "docker", state="running")
    world.fake.fail_next_build("stop failed", transition="stop")
    async with turn(world, bound_to(world, "dev")) as t:
        result = await t.call("update_workspace", template_version_id=world.fake.version_id("docker", "v2"))
    assert result["updated"] is False
    assert "stopping the workspace failed" in result["error"]
    assert world.fake.builds_created == 1  # the stop only: no start after a failed stop
    assert world.fake.workspace("dev")["latest_build"]["transition"] == "stop"


async def test_a_failed_start_after_the_stop_is_reported_with_its_build(world: World) -> None:
    world.fake.create_workspace("dev", "docker", state="running")
    world.fake.fail_next_build("apply failed", transition="start")
    async with turn(world, bound_to(world, "dev")) as t:
        result = await t.call("update_workspace", template_version_id=world.fake.version_id("docker", "v2"))
    assert result["updated"] is False
    assert result["job_error"] == "apply failed"
    assert result["build_id"] == world.fake.workspace("dev")["latest_build"]["id"]


async def test_update_waits_for_a_start_in_progress_before_stopping(world: World) -> None:
    world.fake.create_workspace("dev", "docker", state="starting")
    async with turn(world, bound_to(world, "dev")) as t:
        result = await t.call("update_workspace", template_version_id=world.fake.version_id("docker", "v2"))
    assert result["updated"] is True  # no 409 from a stop posted while the start was still running


# -- bad input and revoked tokens ---------------------------------------------------------------------


async def test_wrongly_typed_arguments_are_a_clear_error(world: World) -> None:
    async with turn(world) as t:
        result = await t.call("create_workspace", template_id=42)
    assert "must be a string" in result["error"]


async def test_revoked_token_is_a_clear_error_result_without_the_token(world: World) -> None:
    world.fake.create_workspace("dev", "docker", state="running")
    binding = bound_to(world, "dev")
    world.fake.revoke_token()
    async with turn(world, binding) as t:
        raw = await t.tools["start_workspace"].call({})
    assert raw.is_error
    assert "signed out" in raw.text
    assert world.fake.token not in raw.text


async def test_token_revoked_while_waiting_for_the_agent_fails_at_once(world: World) -> None:
    world.fake.create_workspace("dev", "docker", state="starting")
    binding = bound_to(world, "dev")

    async with turn(world, binding) as t:
        start = t.tools["start_workspace"]

        async def revoke_once_waiting_for_the_agent() -> None:
            await world.clock.wait_for_sleeper("coder", "agent-poll")
            world.fake.revoke_token()

        async with anyio.create_task_group() as group:
            group.start_soon(revoke_once_waiting_for_the_agent)
            raw = await start.call({})
        elapsed = world.clock.now()
    assert raw.is_error
    assert "signed out" in raw.text
    assert elapsed < ReadinessSettings().agent_online_timeout  # no budget spent waiting on a dead token
