"""``serve-mcp``'s building tools on calls longer than a client waits: progress keeps them alive, a cancelled
call stops waiting while Coder keeps building, ``wait: false`` answers at once, and a template id that is
not a UUID is refused before Coder is asked.

A real MCP client (the SDK's, in process) calls the server, whose Coder client talks to a FakeCoder over
loopback HTTP; both run on one `MockClock` with autojump, so builds of minutes take milliseconds. The
client's timeout is the TypeScript client's (60 s, reset by each progress notification), kept on the same
clock. Nothing asserts how long anything took.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
import structlog
from mcp import Client
from mcp.types import CallToolResult, TextContent

from chat_mcp_primer.cli.serve_mcp import WorkspaceLifecycle, build_server
from chat_mcp_primer.clock import tags
from chat_mcp_primer.testing import FakeAgent, FakeCoder, FakeTemplate, FakeVersion, MockClock, serve_fake_coder
from chat_mcp_primer.workspace.coder import CoderClient

pytestmark = pytest.mark.anyio

# The official TypeScript client's default request timeout (DEFAULT_REQUEST_TIMEOUT_MSEC), which
# `resetTimeoutOnProgress` restarts on every progress notification.
CLIENT_TIMEOUT_SECONDS = 60.0
# A build, an agent connection and startup scripts each longer than the client's timeout would allow
# in one silent stretch, so only progress can carry the call to its answer.
SLOW_QUEUE_SECONDS = 5.0
SLOW_BUILD_SECONDS = 150.0
SLOW_CONNECT_SECONDS = 70.0
SLOW_STARTUP_SECONDS = 90.0
SLOW_TOTAL_SECONDS = SLOW_QUEUE_SECONDS + SLOW_BUILD_SECONDS + SLOW_CONNECT_SECONDS + SLOW_STARTUP_SECONDS
# serve-mcp's promise: a notification at least every 5 s while it waits.
PROMISED_PROGRESS_SECONDS = 5.0
SLOW = FakeVersion(
    "slow",
    agents=[FakeAgent("main", connect_seconds=SLOW_CONNECT_SECONDS, startup_seconds=SLOW_STARTUP_SECONDS)],
    queue_seconds=SLOW_QUEUE_SECONDS,
    build_seconds=SLOW_BUILD_SECONDS,
)
DOCKER = FakeTemplate("docker", [SLOW], active_version="slow")
# Long enough after a cancelled call for the fake's build to have finished on its own.
AFTER_THE_BUILD_SECONDS = SLOW_TOTAL_SECONDS + 60.0
# The test client's own deadline tag, jumped to by autojump like any other deadline.
CLIENT_TIMEOUT_TAGS = ("test", "client-timeout")


@dataclass
class World:
    clock: MockClock
    fake: FakeCoder
    client: Client


@pytest.fixture
async def world(clock: MockClock) -> AsyncIterator[World]:
    fake = FakeCoder(clock, templates=[DOCKER])
    with serve_fake_coder(fake) as served:
        async with CoderClient(served.url, served.token, clock=clock) as coder_client:
            server = build_server(WorkspaceLifecycle(coder_client))
            async with Client(server, cache=None) as client:
                yield World(clock, fake, client)


@dataclass
class Call:
    """One call as a client with the TypeScript client's timeout saw it."""

    result: CallToolResult | None = None
    timed_out: bool = False
    # (progress, message) of each notification, in the order they arrived.
    progress: list[tuple[float, str]] = field(default_factory=list)
    # The clock's time of each notification.
    times: list[float] = field(default_factory=list)

    @property
    def phases(self) -> list[str]:
        """The phase of each run of notifications (the message's text before the first colon)."""
        runs: list[str] = []
        for _, message in self.progress:
            phase = message.split(":", 1)[0]
            if not runs or runs[-1] != phase:
                runs.append(phase)
        return runs


async def call_like_the_typescript_client(
    world: World, tool: str, arguments: dict[str, Any], *, with_progress: bool = True
) -> Call:
    """Call ``tool`` as the TypeScript client does with ``resetTimeoutOnProgress``: give up (cancelling the
    call) once `CLIENT_TIMEOUT_SECONDS` of the clock pass without a response or a progress notification."""
    call = Call()
    clock = world.clock
    deadline = clock.now() + CLIENT_TIMEOUT_SECONDS

    async def heard(progress: float, total: float | None, message: str | None) -> None:
        nonlocal deadline
        call.progress.append((progress, message or ""))
        call.times.append(clock.now())
        deadline = clock.now() + CLIENT_TIMEOUT_SECONDS

    async with anyio.create_task_group() as group:

        async def give_up_when_silent() -> None:
            while clock.now() < deadline:
                await clock.sleep_until(deadline, *CLIENT_TIMEOUT_TAGS)
            call.timed_out = True
            group.cancel_scope.cancel()

        async def request() -> None:
            call.result = await world.client.call_tool(
                tool, arguments, progress_callback=heard if with_progress else None
            )
            group.cancel_scope.cancel()

        group.start_soon(give_up_when_silent)
        group.start_soon(request)
    return call


def decoded(result: CallToolResult | None) -> dict[str, Any]:
    assert result is not None
    [block] = result.content
    assert isinstance(block, TextContent)
    payload: dict[str, Any] = json.loads(block.text)
    assert result.is_error == ("error" in payload)
    return payload


async def test_progress_carries_a_create_longer_than_the_clients_timeout_to_its_answer(world: World) -> None:
    async with world.clock.autojump():
        call = await call_like_the_typescript_client(
            world, "create_workspace", {"template_id": world.fake.template_id("docker"), "name": "dev"}
        )

    assert not call.timed_out
    created = decoded(call.result)
    assert created["created"] is True
    assert created["build_id"] == world.fake.builds("dev")[0]["id"]
    assert not {"error", "agent_status", "startup_scripts"} & created.keys()  # the agent was ready
    assert call.phases == ["build", "agent", "startup scripts"]
    values = [value for value, _ in call.progress]
    assert values == sorted(set(values))  # progress only grows
    gaps = [later - earlier for earlier, later in zip(call.times, call.times[1:], strict=False)]
    assert max(gaps) <= PROMISED_PROGRESS_SECONDS
    assert len(call.progress) >= SLOW_TOTAL_SECONDS / PROMISED_PROGRESS_SECONDS
    assert any(created["build_id"] in message for _, message in call.progress)


async def test_without_progress_the_same_create_is_given_up_by_the_client(world: World) -> None:
    async with world.clock.autojump():
        call = await call_like_the_typescript_client(
            world,
            "create_workspace",
            {"template_id": world.fake.template_id("docker"), "name": "dev"},
            with_progress=False,
        )

    assert call.timed_out
    assert call.progress == []


async def test_a_cancelled_create_stops_waiting_and_coder_keeps_building(world: World) -> None:
    arguments = {"template_id": world.fake.template_id("docker"), "name": "dev"}
    with structlog.testing.capture_logs() as logs:
        async with anyio.create_task_group() as group:

            async def cancel_during_the_build() -> None:
                await world.clock.wait_for_sleeper(*tags.CODER_BUILD_POLL)
                group.cancel_scope.cancel()

            group.start_soon(cancel_during_the_build)
            await world.client.call_tool("create_workspace", arguments)
            pytest.fail("the call was not cancelled")

    [build] = world.fake.builds("dev")
    [cancelled] = [entry for entry in logs if entry["event"] == "serve_mcp.call_cancelled"]
    assert cancelled["build_id"] == build["id"]
    assert cancelled["workspace"] == "dev"
    assert "the build continues in Coder" in cancelled["note"]
    assert world.clock.pending == ()  # nothing of the call waits on

    await world.clock.advance(AFTER_THE_BUILD_SECONDS)
    status = decoded(await world.client.call_tool("workspace_status", {"workspace": "dev"}))
    assert (status["build_id"], status["status"], status["job_status"]) == (build["id"], "running", "succeeded")


async def test_wait_false_answers_with_the_build_and_workspace_status_follows_it_to_running(world: World) -> None:
    arguments = {"template_id": world.fake.template_id("docker"), "name": "dev", "wait": False}
    created = decoded(await world.client.call_tool("create_workspace", arguments))

    [build] = world.fake.builds("dev")
    assert created["created"] is True
    assert created["in_progress"] is True
    assert created["build_id"] == build["id"]
    assert created["build_status"] in {"pending", "starting"}
    assert "workspace_status" in created["message"]

    polls: list[str] = []
    async with world.clock.autojump():
        while not polls or polls[-1] != "running":
            status = decoded(await world.client.call_tool("workspace_status", {"workspace": "dev"}))
            assert status["build_id"] == build["id"]
            polls.append(status["status"])
            await world.clock.sleep(PROMISED_PROGRESS_SECONDS, "test", "poll")
    assert polls[0] in {"pending", "starting"}
    assert polls[-1] == "running"


async def test_restart_with_wait_false_waits_for_its_stop_then_answers_with_the_start(world: World) -> None:
    world.fake.create_workspace("dev", "docker", state="running")
    async with world.clock.autojump():
        restarted = decoded(await world.client.call_tool("restart_workspace", {"workspace": "dev", "wait": False}))

    transitions = [build["transition"] for build in world.fake.builds("dev")]
    assert transitions == ["start", "stop", "start"]
    assert restarted["restarted"] is True
    assert restarted["in_progress"] is True
    assert restarted["build_id"] == world.fake.builds("dev")[-1]["id"]


@pytest.mark.parametrize("template_id", ["docker", "not-a-uuid", ""])
async def test_a_template_id_that_is_not_a_uuid_is_refused_before_coder_is_asked(
    world: World, template_id: str
) -> None:
    result = await world.client.call_tool("create_workspace", {"template_id": template_id, "name": "dev"})

    refused = decoded(result)
    assert refused["error"] == f"template_id must be a UUID (call list_templates to find one), got {template_id!r}"
    assert "valid JSON" not in refused["error"]
    assert not [route for route in world.fake.requests if route.startswith("POST")]
    assert world.fake.builds_created == 0
