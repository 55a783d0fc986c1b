"""CoderClient, the readiness waits and CoderBackend against FakeCoder over real loopback HTTP.

Nothing is mocked: every call goes through httpx to a FakeCoder served by uvicorn on 127.0.0.1. One fake
is served for the whole module (each start/stop costs about 0.2 s); its clock is a relay to the running
test's own `MockClock`, which starts where the previous test's clock stopped, so time never goes backwards
for the fake. Each test uses uniquely named workspaces and templates, and measures request counts and
clock readings as differences from where it started.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import socket
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Iterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import TypeVar

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from chat_mcp_primer.model import WorkspaceBinding
from chat_mcp_primer.testing import (
    FakeAgent,
    FakeApp,
    FakeCoder,
    FakeMcpServer,
    FakeParameter,
    FakePreset,
    FakeTemplate,
    FakeVersion,
    MockClock,
    ServedFakeCoder,
    echo_tools,
    serve_fake_coder,
)
from chat_mcp_primer.workspace._endpoints import AgentMcp, EndpointHealth, McpEndpoint, origin_of
from chat_mcp_primer.workspace.coder import (
    TOKEN_COOKIE,
    AgentStatus,
    AppHealth,
    BuildActiveError,
    BuildCanceledError,
    BuildFailedError,
    BuildStatus,
    BuildTimeoutError,
    CoderAuthError,
    CoderBackend,
    CoderClient,
    CoderConflictError,
    CoderError,
    CoderNotFoundError,
    CoderPermissionError,
    CoderServerError,
    CoderSettings,
    CoderTransportError,
    CoderValidationError,
    CoderWorkspaceDeletedError,
    JobStatus,
    LifecycleState,
    ReadinessSettings,
    Template,
    TemplateVersionImportingError,
    Transition,
    User,
    Validation,
    Workspace,
    WorkspaceBuild,
    select_agent,
    wait_for_agent_ready,
    wait_for_build,
)

pytestmark = pytest.mark.anyio

E = TypeVar("E", bound=BaseException)

SIGNED_OUT = "You are signed out or your session has expired. Please sign in again to continue."
NOT_FOUND = "Resource not found or you do not have access to this resource"
BUILD_ACTIVE = "A workspace build is already active."
NAME_TAKEN_DETAIL = "This value is already in use and should be unique."
# A safety net against a hung event stream, in real time; never an assertion about speed.
STREAM_GUARD_S = 10.0

# FakeVersion/FakeAgent defaults: queue 1 s, start build 5 s, stop build 2 s, cancel 1 s.
QUEUE, BUILD, STOP, CANCEL = 1.0, 5.0, 2.0, 1.0
# CoderSettings defaults: backoff 0.5 s doubling, five attempts in all, so at most four waits.
BACKOFFS = (0.5, 1.0, 2.0, 4.0)

USERS_ROUTE = "GET /api/v2/users/{user}"
WORKSPACE_ROUTE = "GET /api/v2/workspaces/{workspace}"
CREATE_WORKSPACE_ROUTE = "POST /api/v2/users/{user}/workspaces"
CREATE_BUILD_ROUTE = "POST /api/v2/workspaces/{workspace}/builds"
BUILD_ROUTE = "GET /api/v2/workspacebuilds/{workspacebuild}"
TEMPLATES_ROUTE = "GET /api/v2/templates"

V1 = FakeVersion(
    "v1", agents=[FakeAgent("main", mcp_servers=[FakeMcpServer(tools=echo_tools("search"), healthcheck=True)])]
)
V2 = FakeVersion(
    "v2",
    agents=[
        FakeAgent(
            "main",
            mcp_servers=[
                FakeMcpServer(tools=echo_tools("search", "deploy"), healthcheck=True),
                FakeMcpServer(slug="github-mcp", tools=echo_tools("issues"), healthcheck=True),
            ],
            apps=[FakeApp("code-server", healthcheck=True)],
        )
    ],
    parameters=[
        FakeParameter("region", options=("eu", "us"), default_value="eu"),
        FakeParameter("size", type="number", default_value="2", mutable=False),
    ],
    presets=[FakePreset("small", {"size": "1"}, default=True)],
)
DOCKER = FakeTemplate("docker", [V1, V2], display_name="Docker", description="A container per workspace.")
# An agent that never dials in, one whose startup script fails, one whose startup never ends.
LOST = FakeTemplate("lost", [FakeVersion("v1", agents=[FakeAgent("main", never_connects=True)])])
BROKEN = FakeTemplate("broken", [FakeVersion("v1", agents=[FakeAgent("main", startup_outcome="start_error")])])
ENDLESS = FakeTemplate("endless", [FakeVersion("v1", agents=[FakeAgent("main", startup_seconds=math.inf)])])

SMALL_READINESS = ReadinessSettings(
    build_poll_interval=1.0,
    build_timeout=30.0,
    agent_online_timeout=10.0,
    agent_probe_interval=1.0,
    startup_scripts_timeout=10.0,
    lifecycle_poll_interval=1.0,
)


class ClockRelay:
    """The module-wide fake's clock: it reads whichever `MockClock` the running test uses."""

    def __init__(self) -> None:
        self.target = MockClock()

    def now(self) -> float:
        return self.target.now()

    async def sleep(self, seconds: float, *tags: str) -> None:
        await self.target.sleep(seconds, *tags)

    async def sleep_until(self, deadline: float, *tags: str) -> None:
        await self.target.sleep_until(deadline, *tags)


@dataclass
class World:
    relay: ClockRelay
    fake: FakeCoder
    coder: ServedFakeCoder
    # Every token handed out in the module: none may appear in an error text or a repr.
    secrets: list[str]


_names = itertools.count(1)


def unique(prefix: str = "ws") -> str:
    return f"{prefix}-{next(_names)}"


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    relay = ClockRelay()
    fake = FakeCoder(relay, templates=[DOCKER, LOST, BROKEN, ENDLESS])
    with serve_fake_coder(fake) as coder:
        yield World(relay, fake, coder, [fake.token, fake.member_token])


@pytest.fixture
def clock(world: World) -> MockClock:
    """This test's clock, starting where the fake's time stands, and the clock the fake reads from now on."""
    clock = MockClock(start=world.relay.now())
    world.relay.target = clock
    return clock


@pytest.fixture(autouse=True)
def no_leftover_faults(world: World) -> Iterator[None]:
    yield
    world.fake.clear_faults()


@pytest.fixture
async def client(world: World, clock: MockClock) -> AsyncIterator[CoderClient]:
    async with CoderClient(world.coder.url, world.fake.token, clock=clock) as client:
        yield client


@pytest.fixture
async def member(world: World, clock: MockClock) -> AsyncIterator[CoderClient]:
    """A client with bob's token: a member without the admin role."""
    async with CoderClient(world.coder.url, world.fake.member_token, clock=clock) as client:
        yield client


async def raised(world: World, kind: type[E], call: Awaitable[object]) -> E:
    """The error ``call`` raises, which must be exactly ``kind`` and must not show any token."""
    with pytest.raises(kind) as info:
        await call
    error = info.value
    assert type(error) is kind
    text = f"{error}\n{error!r}"
    assert not any(secret in text for secret in world.secrets), "an error text shows a session token"
    return error


def watching(client: CoderClient, workspace_id: str) -> aclosing[AsyncGenerator[Workspace, None]]:
    """The workspace's event stream, closed when the block ends (also after a ``break``)."""
    stream = client.watch(workspace_id)
    assert isinstance(stream, AsyncGenerator)
    return aclosing(stream)


def closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def is_uuid(value: str) -> bool:
    return str(uuid.UUID(value)) == value


async def start_and_wait(
    client: CoderClient, world: World, template: str, settings: ReadinessSettings
) -> WorkspaceBuild:
    """Create a workspace through the API and wait for its start build to succeed (under autojump)."""
    workspace = await client.create_workspace(name=unique(), template_id=world.fake.template_id(template))
    return await wait_for_build(client, workspace.latest_build, client.clock, settings)


# -- endpoints return typed objects ------------------------------------------------------------------------


async def test_buildinfo_returns_the_deployments_version_and_urls(client: CoderClient, world: World) -> None:
    info = await client.buildinfo()
    assert str(info["version"]).startswith("v2.27.1")
    assert is_uuid(str(info["deployment_id"]))
    assert {"external_url", "dashboard_url", "agent_api_version"} <= info.keys()


async def test_me_returns_the_user_the_token_belongs_to(client: CoderClient, member: CoderClient, world: World) -> None:
    assert await client.me() == User(id=world.fake.user.id, username="alice")
    assert await member.me() == User(id=world.fake.member.id, username="bob")


async def test_organizations_lists_the_default_organization(client: CoderClient, world: World) -> None:
    [organization] = await client.organizations()
    assert organization["id"] == world.fake.organization_id
    assert organization["is_default"] is True
    assert organization["name"] == "coder"


async def test_templates_lists_typed_templates_with_their_active_version(client: CoderClient, world: World) -> None:
    templates = {template.name: template for template in await client.templates()}
    assert {"docker", "lost", "broken", "endless"} <= templates.keys()
    assert templates["docker"] == Template(
        id=world.fake.template_id("docker"),
        name="docker",
        display_name="Docker",
        organization_id=world.fake.organization_id,
        active_version_id=world.fake.version_id("docker", "v2"),
        deprecated=False,
        require_active_version=False,
        description="A container per workspace.",
    )


async def test_template_by_id_and_by_name_return_the_same_template(client: CoderClient, world: World) -> None:
    by_id = await client.template(world.fake.template_id("docker"))
    assert (by_id.id, by_id.name, by_id.active_version_id) == (
        world.fake.template_id("docker"),
        "docker",
        world.fake.version_id("docker", "v2"),
    )
    for organization in (world.fake.organization_id, "coder", "default"):
        assert await client.template_by_name(organization, "docker") == by_id


async def test_template_version_returns_the_version_with_its_succeeded_import_job(
    client: CoderClient, world: World
) -> None:
    version_id = world.fake.version_id("docker", "v1")
    version = await client.template_version(version_id)
    assert (version.id, version.template_id, version.name, version.archived) == (
        version_id,
        world.fake.template_id("docker"),
        "v1",
        False,
    )
    assert version.job.status is JobStatus.SUCCEEDED
    assert is_uuid(version.job.id)
    assert version.job.error is None


async def test_rich_parameters_lists_the_versions_parameters(client: CoderClient, world: World) -> None:
    parameters = await client.rich_parameters(world.fake.version_id("docker", "v2"))
    assert [(p["name"], p["type"], p["mutable"], p["required"], p["default_value"]) for p in parameters] == [
        ("region", "string", True, False, "eu"),
        ("size", "number", False, False, "2"),
    ]
    assert [option["value"] for option in parameters[0]["options"]] == ["eu", "us"]
    assert await client.rich_parameters(world.fake.version_id("docker", "v1")) == []


async def test_presets_parse_the_capitalised_wire_keys(client: CoderClient, world: World) -> None:
    [preset] = await client.presets(world.fake.version_id("docker", "v2"))
    assert is_uuid(preset.id)
    assert (preset.name, dict(preset.parameters), preset.default) == ("small", {"size": "1"}, True)
    assert await client.presets(world.fake.version_id("docker", "v1")) == []


async def test_workspace_returns_the_workspace_with_its_latest_build_and_agents(
    client: CoderClient, world: World
) -> None:
    fake = world.fake
    name = unique()
    workspace_id = fake.create_workspace(name, "docker", version="v1", state="running")
    workspace = await client.workspace(workspace_id)
    assert (workspace.id, workspace.name, workspace.owner_id, workspace.owner_name) == (
        workspace_id,
        name,
        fake.user.id,
        "alice",
    )
    assert (workspace.organization_id, workspace.template_id, workspace.template_name) == (
        fake.organization_id,
        fake.template_id("docker"),
        "docker",
    )
    assert workspace.template_active_version_id == fake.version_id("docker", "v2")
    assert (workspace.outdated, workspace.template_require_active_version) == (True, False)
    build = workspace.latest_build
    assert (build.workspace_id, build.workspace_name, build.workspace_owner_name, build.build_number) == (
        workspace_id,
        name,
        "alice",
        1,
    )
    assert (build.transition, build.status, build.job.status) == (
        Transition.START,
        BuildStatus.RUNNING,
        JobStatus.SUCCEEDED,
    )
    assert build.template_version_id == fake.version_id("docker", "v1")
    [agent] = build.agents
    assert (agent.name, agent.status, agent.lifecycle_state, agent.parent_id) == (
        "main",
        AgentStatus.CONNECTED,
        LifecycleState.READY,
        None,
    )
    assert [(app.slug, app.health, app.url) for app in agent.apps] == [
        ("mcp", AppHealth.HEALTHY, "http://localhost:3000")
    ]


async def test_workspaces_and_my_workspaces_filter_by_search_terms(client: CoderClient, world: World) -> None:
    tag = unique("list")
    running = world.fake.create_workspace(f"{tag}-a", "docker", state="running")
    stopped = world.fake.create_workspace(f"{tag}-b", "docker", state="stopped")
    mine = await client.my_workspaces(f"name:{tag}")
    assert [(w.id, w.latest_build.status) for w in mine] == [
        (running, BuildStatus.RUNNING),
        (stopped, BuildStatus.STOPPED),
    ]
    assert all(isinstance(w, Workspace) for w in mine)
    assert [w.id for w in await client.my_workspaces(f"name:{tag}", "status:stopped")] == [stopped]
    assert [w.id for w in await client.workspaces("owner:me", f"name:{tag}", limit=1, offset=1)] == [stopped]
    assert [w.id for w in await client.workspaces(f"name:{tag}", "template:docker", limit=1)] == [running]


async def test_workspace_by_name_returns_the_callers_workspace(client: CoderClient, world: World) -> None:
    name = unique()
    workspace_id = world.fake.create_workspace(name, "docker", state="running")
    found = await client.workspace_by_name(name)
    assert (found.id, found.name, found.owner_name) == (workspace_id, name, "alice")


async def test_create_workspace_from_a_template_returns_the_new_workspace_with_a_pending_build(
    client: CoderClient, world: World
) -> None:
    fake = world.fake
    posts, builds = fake.request_count(CREATE_WORKSPACE_ROUTE), fake.builds_created
    name = unique()
    workspace = await client.create_workspace(name=name, template_id=fake.template_id("docker"))
    assert fake.request_count(CREATE_WORKSPACE_ROUTE) == posts + 1  # the 201 is a success, not retried
    assert fake.builds_created == builds + 1
    assert (workspace.name, workspace.owner_name, workspace.template_id, workspace.outdated) == (
        name,
        "alice",
        fake.template_id("docker"),
        False,
    )
    build = workspace.latest_build
    assert (build.transition, build.status, build.job.status, build.build_number, build.agents) == (
        Transition.START,
        BuildStatus.PENDING,
        JobStatus.PENDING,
        1,
        (),
    )
    assert build.template_version_id == fake.version_id("docker", "v2")  # the active version
    assert (await client.workspace(workspace.id)).latest_build.id == build.id


async def test_create_workspace_from_a_version_with_a_preset_and_parameters(client: CoderClient, world: World) -> None:
    fake = world.fake
    v2 = fake.version_id("docker", "v2")
    [preset] = await client.presets(v2)
    workspace = await client.create_workspace(
        name=unique(), template_version_id=v2, preset_id=preset.id, parameters={"region": "us", "size": "1"}
    )
    assert workspace.latest_build.template_version_id == v2
    [recorded] = fake.builds(workspace.id)
    assert recorded["template_version_preset_id"] == preset.id
    old = await client.create_workspace(name=unique(), template_version_id=fake.version_id("docker", "v1"))
    assert (old.latest_build.template_version_id, old.outdated) == (fake.version_id("docker", "v1"), True)


async def test_create_workspace_needs_exactly_one_of_template_and_version(client: CoderClient, world: World) -> None:
    posts = world.fake.request_count(CREATE_WORKSPACE_ROUTE)
    with pytest.raises(ValueError, match="exactly one"):
        await client.create_workspace(name=unique())
    with pytest.raises(ValueError, match="exactly one"):
        await client.create_workspace(
            name=unique(),
            template_id=world.fake.template_id("docker"),
            template_version_id=world.fake.version_id("docker", "v2"),
        )
    assert world.fake.request_count(CREATE_WORKSPACE_ROUTE) == posts


async def test_create_build_stop_then_start_without_a_version_reuses_the_previous_version(
    client: CoderClient, world: World, clock: MockClock
) -> None:
    v1 = world.fake.version_id("docker", "v1")
    workspace_id = world.fake.create_workspace(unique(), "docker", version="v1", state="running")
    stop = await client.create_build(workspace_id, Transition.STOP, reason="cli")
    assert (stop.workspace_id, stop.transition, stop.status, stop.build_number, stop.template_version_id) == (
        workspace_id,
        Transition.STOP,
        BuildStatus.PENDING,
        2,
        v1,
    )
    await clock.advance(QUEUE + STOP)
    assert (await client.build(stop.id)).status is BuildStatus.STOPPED
    start = await client.create_build(workspace_id, Transition.START)
    assert (start.transition, start.status, start.build_number) == (Transition.START, BuildStatus.PENDING, 3)
    assert start.template_version_id == v1  # not the active v2: no version given means the previous one
    assert (await client.workspace(workspace_id)).outdated is True


async def test_create_build_with_a_template_version_id_moves_the_workspace_to_it(
    client: CoderClient, world: World, clock: MockClock
) -> None:
    v2 = world.fake.version_id("docker", "v2")
    workspace_id = world.fake.create_workspace(unique(), "docker", version="v1", state="stopped")
    start = await client.create_build(workspace_id, Transition.START, template_version_id=v2)
    assert (start.transition, start.template_version_id) == (Transition.START, v2)
    await clock.advance(QUEUE + BUILD)
    workspace = await client.workspace(workspace_id)
    assert (workspace.latest_build.id, workspace.latest_build.status, workspace.outdated) == (
        start.id,
        BuildStatus.RUNNING,
        False,
    )


async def test_build_returns_the_polled_build_as_its_job_progresses(
    client: CoderClient, world: World, clock: MockClock
) -> None:
    workspace = await client.create_workspace(name=unique(), template_id=world.fake.template_id("docker"))
    build_id = workspace.latest_build.id
    await clock.advance(QUEUE)
    running = await client.build(build_id)
    assert (running.id, running.status, running.job.status) == (build_id, BuildStatus.STARTING, JobStatus.RUNNING)
    await clock.advance(BUILD)
    done = await client.build(build_id)
    assert (done.status, done.job.status) == (BuildStatus.RUNNING, JobStatus.SUCCEEDED)
    assert [agent.name for agent in done.agents] == ["main"]


async def test_cancel_build_cancels_a_running_build_and_refuses_a_completed_one(
    client: CoderClient, world: World, clock: MockClock
) -> None:
    workspace = await client.create_workspace(name=unique(), template_id=world.fake.template_id("docker"))
    build_id = workspace.latest_build.id
    await clock.advance(QUEUE)
    await client.cancel_build(build_id)
    canceling = await client.build(build_id)
    assert (canceling.status, canceling.job.status) == (BuildStatus.CANCELING, JobStatus.CANCELING)
    await clock.advance(CANCEL)
    canceled = await client.build(build_id)
    assert (canceled.status, canceled.job.status) == (BuildStatus.CANCELED, JobStatus.CANCELED)
    error = await raised(world, CoderValidationError, client.cancel_build(build_id))
    assert (error.status, error.message) == (400, "Job has already completed!")


async def test_watch_yields_the_workspace_first_then_each_change(
    client: CoderClient, world: World, clock: MockClock
) -> None:
    workspace = await client.create_workspace(name=unique(), template_id=world.fake.template_id("docker"))
    seen: list[Workspace] = []
    with anyio.fail_after(STREAM_GUARD_S):
        async with watching(client, workspace.id) as events:
            async for event in events:
                seen.append(event)
                if len(seen) == 1:
                    await clock.advance(QUEUE)
                else:
                    break
    first, second = seen
    assert (first.id, first.name, first.latest_build.status) == (workspace.id, workspace.name, BuildStatus.PENDING)
    assert (second.id, second.latest_build.status) == (workspace.id, BuildStatus.STARTING)


async def test_watch_breaking_out_after_the_first_workspace_closes_the_stream(
    client: CoderClient, world: World
) -> None:
    workspace_id = world.fake.create_workspace(unique(), "docker", state="running")
    first: Workspace | None = None
    with anyio.fail_after(STREAM_GUARD_S):
        async with watching(client, workspace_id) as events:
            async for event in events:
                first = event
                break
    assert first is not None
    assert (first.id, first.latest_build.status) == (workspace_id, BuildStatus.RUNNING)
    assert (await client.workspace(workspace_id)).id == workspace_id  # the client is still usable


async def test_watch_of_an_unknown_workspace_raises_not_found(client: CoderClient, world: World) -> None:
    async def first_event() -> None:
        async with watching(client, str(uuid.uuid4())) as events:
            async for _ in events:
                break

    with anyio.fail_after(STREAM_GUARD_S):
        error = await raised(world, CoderNotFoundError, first_event())
    assert (error.status, error.message) == (404, NOT_FOUND)


# -- error statuses map to error classes -------------------------------------------------------------------


async def test_invalid_uuid_is_a_validation_error_keeping_message_and_detail(client: CoderClient, world: World) -> None:
    error = await raised(world, CoderValidationError, client.workspace("x"))
    assert (error.status, error.message, error.detail) == (400, 'Invalid UUID "x".', "invalid UUID length: 1")
    assert str(error) == 'Invalid UUID "x". (invalid UUID length: 1)'


async def test_field_validation_failure_is_a_validation_error_keeping_its_validations(
    client: CoderClient, world: World
) -> None:
    error = await raised(
        world,
        CoderValidationError,
        client.create_workspace(name="Not_Valid", template_id=world.fake.template_id("docker")),
    )
    assert (error.status, error.message) == (400, "Validation failed.")
    assert error.validations == (
        Validation("name", 'Validation failed for tag "workspace_name" with value: "Not_Valid"'),
    )
    unknown = str(uuid.uuid4())
    error = await raised(world, CoderValidationError, client.create_workspace(name=unique(), template_id=unknown))
    assert error.message == f'Template "{unknown}" doesn\'t exist.'
    assert error.validations == (Validation("template_id", "template not found"),)


async def test_missing_token_is_an_auth_error_and_is_not_retried(world: World, clock: MockClock) -> None:
    start, before = clock.now(), world.fake.request_count(USERS_ROUTE)
    async with clock.autojump(), CoderClient(world.coder.url, "", clock=clock) as anonymous:
        error = await raised(world, CoderAuthError, anonymous.me())
    assert (error.status, error.message, error.detail) == (
        401,
        SIGNED_OUT,
        'Cookie "coder_session_token" or query parameter must be provided.',
    )
    assert world.fake.request_count(USERS_ROUTE) == before + 1
    assert clock.now() == start


async def test_revoked_token_is_an_auth_error_and_is_not_retried(world: World, clock: MockClock) -> None:
    token = world.fake.issue_token("alice")
    world.secrets.append(token)
    async with CoderClient(world.coder.url, token, clock=clock) as revoked:
        assert (await revoked.me()).username == "alice"
        world.fake.revoke_token(token)
        start, before = clock.now(), world.fake.request_count(USERS_ROUTE)
        async with clock.autojump():
            error = await raised(world, CoderAuthError, revoked.me())
        assert (error.status, error.message, error.detail) == (401, SIGNED_OUT, "API key is invalid.")
        assert world.fake.request_count(USERS_ROUTE) == before + 1
        assert clock.now() == start  # no backoff was taken
        assert token not in repr(revoked)


async def test_acting_without_permission_is_a_permission_error(member: CoderClient, world: World) -> None:
    before = world.fake.request_count(CREATE_WORKSPACE_ROUTE)
    error = await raised(
        world,
        CoderPermissionError,
        member.create_workspace(name=unique(), template_id=world.fake.template_id("docker"), user="alice"),
    )
    assert (error.status, error.message) == (403, "Unauthorized to create workspace.")
    assert world.fake.request_count(CREATE_WORKSPACE_ROUTE) == before + 1


async def test_unknown_or_unreadable_resources_are_not_found_and_not_retried(
    client: CoderClient, member: CoderClient, world: World
) -> None:
    before = world.fake.request_count(WORKSPACE_ROUTE)
    error = await raised(world, CoderNotFoundError, client.workspace(str(uuid.uuid4())))
    assert (error.status, error.message, error.detail, error.validations) == (404, NOT_FOUND, None, ())
    assert world.fake.request_count(WORKSPACE_ROUTE) == before + 1
    await raised(world, CoderNotFoundError, client.template(str(uuid.uuid4())))
    await raised(world, CoderNotFoundError, client.build(str(uuid.uuid4())))
    await raised(world, CoderNotFoundError, client.template_by_name("coder", "no-such-template"))
    alices = world.fake.create_workspace(unique(), "docker", state="running")
    error = await raised(world, CoderNotFoundError, member.workspace(alices))  # a member may not read it
    assert error.message == NOT_FOUND


async def test_version_still_importing_is_template_version_importing_error(
    client: CoderClient, world: World, clock: MockClock
) -> None:
    fake = world.fake
    template = unique("imports")
    fake.add_template(FakeTemplate(template, [FakeVersion("v1")]))
    slow = fake.add_version(template, FakeVersion("slow", import_seconds=30.0))
    assert (await client.template_version(slow)).job.status is JobStatus.RUNNING
    error = await raised(
        world, TemplateVersionImportingError, client.create_workspace(name=unique(), template_version_id=slow)
    )
    assert (error.status, error.message) == (
        406,
        "The provided template version is running. Wait for it to complete importing!",
    )
    workspace_id = fake.create_workspace(unique(), template, state="stopped")
    error = await raised(
        world,
        TemplateVersionImportingError,
        client.create_build(workspace_id, Transition.START, template_version_id=slow),
    )
    assert error.status == 406
    await clock.advance(30.0)
    started = await client.create_build(workspace_id, Transition.START, template_version_id=slow)
    assert started.template_version_id == slow


async def test_taken_name_is_a_conflict_error_with_the_name_validation(client: CoderClient, world: World) -> None:
    name = unique()
    world.fake.create_workspace(name, "docker", state="running")
    before = world.fake.request_count(CREATE_WORKSPACE_ROUTE)
    error = await raised(
        world, CoderConflictError, client.create_workspace(name=name, template_id=world.fake.template_id("docker"))
    )
    assert (error.status, error.message, error.detail) == (409, f'Workspace "{name}" already exists.', None)
    assert error.validations == (Validation("name", NAME_TAKEN_DETAIL),)
    assert world.fake.request_count(CREATE_WORKSPACE_ROUTE) == before + 1


async def test_build_while_another_is_active_is_build_active_error_and_not_retried(
    client: CoderClient, world: World, clock: MockClock
) -> None:
    workspace_id = world.fake.create_workspace(unique(), "docker", state="running")
    world.fake.stall_next_build(transition="stop")
    stop = await client.create_build(workspace_id, Transition.STOP)
    await clock.advance(3600.0)
    before = world.fake.request_count(CREATE_BUILD_ROUTE)
    error = await raised(world, BuildActiveError, client.create_build(workspace_id, Transition.START))
    assert isinstance(error, CoderConflictError)
    assert (error.status, error.message, error.detail) == (409, BUILD_ACTIVE, BUILD_ACTIVE)
    assert world.fake.request_count(CREATE_BUILD_ROUTE) == before + 1
    await client.cancel_build(stop.id)
    await clock.advance(CANCEL)
    assert (await client.create_build(workspace_id, Transition.START)).transition is Transition.START


async def test_deleted_workspace_read_by_id_is_workspace_deleted_error(client: CoderClient, world: World) -> None:
    name = unique()
    workspace_id = world.fake.create_workspace(name, "docker", state="running")
    world.fake.delete_workspace(name)
    error = await raised(world, CoderWorkspaceDeletedError, client.workspace(workspace_id))
    assert error.status == 410
    assert error.message.startswith(f'Workspace "{workspace_id}" was deleted')
    await raised(world, CoderNotFoundError, client.workspace_by_name(name))


async def test_path_parameters_are_escaped_so_an_id_cannot_reach_another_route(
    client: CoderClient, world: World
) -> None:
    """An id may come from a model's tool call: a ``/`` in it must not walk the request to another endpoint
    with the caller's token. (With ``quote(id, safe="")`` the server sees one path segment and refuses it.)"""
    users = world.fake.request_count(USERS_ROUTE)
    with pytest.raises(CoderError) as info:
        await client.workspace("../users/me")
    assert world.fake.request_count(USERS_ROUTE) == users, "the workspace id walked the request to GET /users/me"
    assert isinstance(info.value, CoderValidationError | CoderNotFoundError)


# -- retries -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("burst", [1, 2, 4])
async def test_server_error_burst_shorter_than_max_attempts_succeeds_after_the_backoffs(
    burst: int, client: CoderClient, world: World, clock: MockClock
) -> None:
    start, before = clock.now(), world.fake.request_count(USERS_ROUTE)
    world.fake.fail_requests(burst, status=503, route=USERS_ROUTE)
    async with clock.autojump():
        me = await client.me()
    assert me.username == "alice"
    assert clock.now() - start == sum(BACKOFFS[:burst])
    assert world.fake.request_count(USERS_ROUTE) == before + burst + 1
    assert world.fake.pending_faults == 0


async def test_a_retry_waits_its_backoff_on_the_clock_before_the_next_attempt(
    client: CoderClient, world: World, clock: MockClock
) -> None:
    start, before = clock.now(), world.fake.request_count(USERS_ROUTE)
    world.fake.fail_requests(1, status=502, route=USERS_ROUTE)
    answers: list[User] = []

    async def call() -> None:
        answers.append(await client.me())

    async with anyio.create_task_group() as group:
        group.start_soon(call)
        await clock.wait_for_sleeper("coder", "retry")
        assert clock.peek() == BACKOFFS[0]
        await clock.advance(BACKOFFS[0] / 2)
        assert world.fake.request_count(USERS_ROUTE) == before + 1  # still waiting: no second attempt yet
        await clock.advance(BACKOFFS[0] / 2)
    assert [user.username for user in answers] == ["alice"]
    assert world.fake.request_count(USERS_ROUTE) == before + 2
    assert clock.now() - start == BACKOFFS[0]


async def test_backoff_doubles_up_to_max_backoff(world: World, clock: MockClock) -> None:
    settings = CoderSettings(max_attempts=6, initial_backoff=0.5, max_backoff=1.5)
    start, before = clock.now(), world.fake.request_count(TEMPLATES_ROUTE)
    world.fake.fail_requests(5, status=500, route=TEMPLATES_ROUTE)
    async with clock.autojump(), CoderClient(world.coder.url, world.fake.token, clock=clock, settings=settings) as c:
        templates = await c.templates()
    assert "docker" in [template.name for template in templates]
    assert clock.now() - start == 0.5 + 1.0 + 1.5 + 1.5 + 1.5
    assert world.fake.request_count(TEMPLATES_ROUTE) == before + 6


async def test_server_error_burst_as_long_as_max_attempts_raises_server_error(
    client: CoderClient, world: World, clock: MockClock
) -> None:
    attempts = client.settings.max_attempts
    start, before = clock.now(), world.fake.request_count(USERS_ROUTE)
    world.fake.fail_requests(attempts, status=503, route=USERS_ROUTE)
    async with clock.autojump():
        error = await raised(world, CoderServerError, client.me())
    assert (error.status, error.message, error.detail) == (503, "Service Unavailable", "fault injected by FakeCoder")
    assert clock.now() - start == sum(BACKOFFS[: attempts - 1])
    assert world.fake.request_count(USERS_ROUTE) == before + attempts
    assert (await client.me()).username == "alice"  # the burst is over


async def test_rate_limit_waits_exactly_the_retry_after_on_the_clock(
    client: CoderClient, world: World, clock: MockClock
) -> None:
    start, before = clock.now(), world.fake.request_count(USERS_ROUTE)
    world.fake.rate_limit(2, retry_after_seconds=3, route=USERS_ROUTE)
    async with clock.autojump():
        me = await client.me()
    assert me.username == "alice"
    assert clock.now() - start == 3.0 + 3.0  # the server's hint each time, not 0.5 + 1.0
    assert world.fake.request_count(USERS_ROUTE) == before + 3


async def test_retry_after_longer_than_max_retry_after_fails_at_once(
    client: CoderClient, world: World, clock: MockClock
) -> None:
    start, before = clock.now(), world.fake.request_count(USERS_ROUTE)
    world.fake.rate_limit(1, retry_after_seconds=int(client.settings.max_retry_after) + 1, route=USERS_ROUTE)
    async with clock.autojump():
        error = await raised(world, CoderServerError, client.me())
    assert error.status == 429
    assert "rate limited" in error.message
    assert clock.now() == start
    assert world.fake.request_count(USERS_ROUTE) == before + 1


async def test_connection_refused_is_retried_then_a_transport_error_without_the_token(
    world: World, clock: MockClock
) -> None:
    secret = world.fake.token
    start = clock.now()
    async with CoderClient(f"http://127.0.0.1:{closed_port()}", secret, clock=clock) as unreachable:
        assert secret not in repr(unreachable)
        async with clock.autojump():
            error = await raised(world, CoderTransportError, unreachable.me())
    assert clock.now() - start == sum(BACKOFFS)
    assert str(error) == f"cannot reach {unreachable.authority}: connection refused (GET /users/me)"
    assert error.__cause__ is None  # the httpx error (and its request headers) are not chained


async def test_a_request_unanswered_within_request_timeout_is_retried_then_a_transport_error(
    world: World, clock: MockClock
) -> None:
    """The watch route never finishes its body: a plain request to it hangs until the clock's timeout fires."""
    settings = CoderSettings(request_timeout=30.0, max_attempts=2)
    workspace_id = world.fake.create_workspace(unique(), "docker", state="running")
    start = clock.now()
    failures: list[CoderTransportError] = []

    async def call(client: CoderClient) -> None:
        failures.append(
            await raised(world, CoderTransportError, client.request("GET", f"/workspaces/{workspace_id}/watch"))
        )

    async with (
        CoderClient(world.coder.url, world.fake.token, clock=clock, settings=settings) as client,
        anyio.create_task_group() as group,
    ):
        group.start_soon(call, client)
        await clock.wait_for_sleeper("coder", "request", "timeout")
        assert clock.peek() == settings.request_timeout
        await clock.advance(settings.request_timeout)
        await clock.wait_for_sleeper("coder", "retry")
        await clock.advance(settings.initial_backoff)
        await clock.wait_for_sleeper("coder", "request", "timeout")
        await clock.advance(settings.request_timeout)
    [error] = failures
    authority = world.coder.url.removeprefix("http://")
    assert str(error) == (
        f"cannot reach {authority}: no answer within {settings.request_timeout:g} s "
        f"(GET /workspaces/{workspace_id}/watch)"
    )
    assert clock.now() - start == 2 * settings.request_timeout + settings.initial_backoff


async def test_a_trailing_slash_on_the_url_is_ignored(world: World, clock: MockClock) -> None:
    async with CoderClient(world.coder.url + "/", world.fake.token, clock=clock) as client:
        assert client.url == world.coder.url
        assert (await client.me()).username == "alice"


async def test_client_repr_never_shows_the_token(client: CoderClient, world: World) -> None:
    assert repr(client) == f"CoderClient({world.coder.url!r})"
    assert world.fake.token not in repr(client)
    assert client.token == world.fake.token


# -- regressions: the seed client's weak spots -------------------------------------------------------------


async def test_my_workspaces_sends_the_owner_filter_so_an_admin_lists_only_its_own(
    client: CoderClient, world: World
) -> None:
    tag = unique("owned")
    alices = world.fake.create_workspace(f"{tag}-alice", "docker", state="running")
    bobs = world.fake.create_workspace(f"{tag}-bob", "docker", owner="bob", state="running")
    mine = [w.id for w in await client.my_workspaces()]
    assert alices in mine
    assert bobs not in mine
    assert {w.owner_name for w in await client.my_workspaces()} == {"alice"}
    everyone = [w.id for w in await client.workspaces()]  # an admin token without a filter: everyone's
    assert {alices, bobs} <= set(everyone)


async def test_workspace_by_name_matches_exactly_but_case_insensitively(client: CoderClient, world: World) -> None:
    tag = unique("t")
    dev_box = world.fake.create_workspace(f"{tag}-dev-box", "docker", state="running")
    assert (await client.workspace_by_name(f"{tag.upper()}-DEV-Box")).id == dev_box
    error = await raised(world, CoderNotFoundError, client.workspace_by_name(f"{tag}-dev"))
    assert error.status == 404
    await raised(world, CoderNotFoundError, client.workspace_by_name(f"{tag}-dev-bo"))
    dev = world.fake.create_workspace(f"{tag}-dev", "docker", state="stopped")
    assert (await client.workspace_by_name(f"{tag}-DEV")).id == dev  # not dev-box, which also contains it


async def test_workspace_by_name_does_not_find_another_users_workspace(client: CoderClient, world: World) -> None:
    name = unique()
    world.fake.create_workspace(name, "docker", owner="bob", state="running")
    await raised(world, CoderNotFoundError, client.workspace_by_name(name))


async def test_wait_for_build_returns_the_succeeded_build(client: CoderClient, world: World, clock: MockClock) -> None:
    start = clock.now()
    async with clock.autojump():
        build = await start_and_wait(client, world, "docker", ReadinessSettings())
    assert (build.status, build.job.status) == (BuildStatus.RUNNING, JobStatus.SUCCEEDED)
    assert [agent.name for agent in build.agents] == ["main"]
    assert clock.now() - start == 6.0  # polled every 2 s; the job succeeds 1 + 5 s after it was queued


async def test_wait_for_build_raises_build_failed_with_the_job_error_code_and_build_id(
    client: CoderClient, world: World, clock: MockClock
) -> None:
    workspace_id = world.fake.create_workspace(unique(), "docker", state="stopped")
    world.fake.fail_next_build("quota exceeded: 2 of 2 workspaces", "INSUFFICIENT_QUOTA", transition="start")
    build = await client.create_build(workspace_id, Transition.START)
    async with clock.autojump():
        error = await raised(world, BuildFailedError, wait_for_build(client, build, clock, ReadinessSettings()))
    assert (error.build_id, error.job_error, error.error_code) == (
        build.id,
        "quota exceeded: 2 of 2 workspaces",
        "INSUFFICIENT_QUOTA",
    )
    assert error.detail == "quota exceeded: 2 of 2 workspaces"
    assert "quota exceeded" in str(error)


async def test_wait_for_build_raises_build_failed_for_a_failed_stop(
    client: CoderClient, world: World, clock: MockClock
) -> None:
    workspace_id = world.fake.create_workspace(unique(), "docker", state="running")
    world.fake.fail_next_build("docker: container busy", transition="stop")
    build = await client.create_build(workspace_id, Transition.STOP)
    async with clock.autojump():
        error = await raised(world, BuildFailedError, wait_for_build(client, build, clock, SMALL_READINESS))
    assert (error.build_id, error.job_error) == (build.id, "docker: container busy")


async def test_wait_for_build_raises_build_canceled_for_a_canceled_build(
    client: CoderClient, world: World, clock: MockClock
) -> None:
    workspace = await client.create_workspace(name=unique(), template_id=world.fake.template_id("docker"))
    build = workspace.latest_build
    await clock.advance(QUEUE)
    await client.cancel_build(build.id)
    async with clock.autojump():
        error = await raised(world, BuildCanceledError, wait_for_build(client, build, clock, SMALL_READINESS))
    assert error.build_id == build.id


async def test_wait_for_build_raises_build_timeout_past_its_budget(
    client: CoderClient, world: World, clock: MockClock
) -> None:
    workspace_id = world.fake.create_workspace(unique(), "docker", state="running")
    world.fake.stall_next_build()
    build = await client.create_build(workspace_id, Transition.STOP)
    start = clock.now()
    async with clock.autojump():
        error = await raised(world, BuildTimeoutError, wait_for_build(client, build, clock, SMALL_READINESS))
    assert isinstance(error, TimeoutError)
    assert error.build_id == build.id
    assert clock.now() - start == SMALL_READINESS.build_timeout
    await client.cancel_build(build.id)


async def test_wait_for_build_treats_a_404_while_polling_as_an_error(
    client: CoderClient, member: CoderClient, world: World, clock: MockClock
) -> None:
    workspace = await client.create_workspace(name=unique(), template_id=world.fake.template_id("docker"))
    pending = workspace.latest_build
    async with clock.autojump():
        # The build is there, but this token may not read it: Coder answers 404.
        error = await raised(world, CoderNotFoundError, wait_for_build(member, pending, clock, SMALL_READINESS))
        assert error.status == 404
        vanished = dataclasses.replace(pending, id=str(uuid.uuid4()))
        await raised(world, CoderNotFoundError, wait_for_build(client, vanished, clock, SMALL_READINESS))


# -- readiness ---------------------------------------------------------------------------------------------


async def test_wait_for_agent_ready_returns_empty_once_the_agent_connects_and_is_ready(
    client: CoderClient, world: World, clock: MockClock
) -> None:
    settings = ReadinessSettings()
    async with clock.autojump():
        build = await start_and_wait(client, world, "docker", settings)
        agent = select_agent(build.agents)
        assert agent.status is not AgentStatus.CONNECTED
        result = await wait_for_agent_ready(client, build.id, agent.id, clock, settings)
    assert result == {}
    [ready] = (await client.build(build.id)).agents
    assert (ready.id, ready.status, ready.lifecycle_state) == (agent.id, AgentStatus.CONNECTED, LifecycleState.READY)


async def test_wait_for_agent_ready_reports_not_ready_after_the_online_budget_for_an_agent_that_never_connects(
    client: CoderClient, world: World, clock: MockClock
) -> None:
    settings = ReadinessSettings()
    async with clock.autojump():
        build = await start_and_wait(client, world, "lost", settings)
        agent = select_agent(build.agents)
        start = clock.now()
        result = await wait_for_agent_ready(client, build.id, agent.id, clock, settings)
    assert clock.now() - start == settings.agent_online_timeout
    assert result.keys() == {"agent_status", "agent_error"}
    assert result["agent_status"] == "not_ready"
    print("PROBE", result)
    assert result["agent_error"] in ("agent status is connecting", "agent status is timeout")


async def test_wait_for_agent_ready_reports_failed_startup_scripts(
    client: CoderClient, world: World, clock: MockClock
) -> None:
    async with clock.autojump():
        build = await start_and_wait(client, world, "broken", SMALL_READINESS)
        agent = select_agent(build.agents)
        result = await wait_for_agent_ready(client, build.id, agent.id, clock, SMALL_READINESS)
    assert result == {"startup_scripts": "startup_scripts_failed", "lifecycle_state": "start_error"}


async def test_wait_for_agent_ready_reports_a_startup_scripts_timeout_when_startup_never_finishes(
    client: CoderClient, world: World, clock: MockClock
) -> None:
    async with clock.autojump():
        build = await start_and_wait(client, world, "endless", SMALL_READINESS)
        agent = select_agent(build.agents)
        start = clock.now()
        result = await wait_for_agent_ready(client, build.id, agent.id, clock, SMALL_READINESS)
    assert result == {"startup_scripts": "startup_scripts_timeout"}
    # The agent connects 2 s after its build; the scripts then get their own full budget from that moment.
    assert clock.now() - start == 2.0 + SMALL_READINESS.startup_scripts_timeout


# -- CoderBackend.current_agent ----------------------------------------------------------------------------


async def test_current_agent_returns_the_agent_and_its_mcp_endpoints(client: CoderClient, world: World) -> None:
    name = unique()
    workspace_id = world.fake.create_workspace(name, "docker", state="running")
    [agent] = (await client.workspace(workspace_id)).latest_build.agents
    backend = CoderBackend(client)
    found = await backend.current_agent(WorkspaceBinding(workspace_id=workspace_id))
    base = f"{world.coder.url}/@alice/{name}.main/apps"
    headers = {"Cookie": f"{TOKEN_COOKIE}={world.fake.token}"}
    healthy = {"headers": headers, "health": EndpointHealth.HEALTHY, "origin": origin_of(world.coder.url)}
    assert found == AgentMcp(
        workspace_id=workspace_id,
        agent_id=agent.id,
        endpoints=(
            McpEndpoint(server="mcp", url=f"{base}/mcp/mcp", report_url=f"{base}/mcp/discovery", **healthy),
            McpEndpoint(
                server="github", url=f"{base}/github-mcp/mcp", report_url=f"{base}/github-mcp/discovery", **healthy
            ),
        ),
    )
    assert found.endpoints[0].url == world.coder.mcp_url(name)
    for endpoint in found.endpoints:
        assert world.fake.token not in repr(endpoint)
    assert world.fake.token not in repr(found)
    again = await backend.current_agent(WorkspaceBinding(workspace_id, agent_id=str(uuid.uuid4())))
    assert again == found  # a stale agent id: the build's chat agent is picked again


async def test_current_agent_endpoint_reaches_the_workspace_mcp_server(client: CoderClient, world: World) -> None:
    workspace_id = world.fake.create_workspace(unique(), "docker", state="running")
    found = await CoderBackend(client).current_agent(WorkspaceBinding(workspace_id))
    assert found is not None
    tools: dict[str, list[str]] = {}
    for endpoint in found.endpoints:
        async with (
            httpx2.AsyncClient(headers=dict(endpoint.headers)) as http,
            Client(streamable_http_client(endpoint.url, http_client=http), cache=None) as mcp,
        ):
            tools[endpoint.server] = [tool.name for tool in (await mcp.list_tools()).tools]
    assert tools == {"mcp": ["search", "deploy"], "github": ["issues"]}


async def test_current_agent_is_none_while_the_build_is_in_progress_then_the_agent(
    client: CoderClient, world: World, clock: MockClock
) -> None:
    backend = CoderBackend(client)
    workspace = await client.create_workspace(name=unique(), template_id=world.fake.template_id("docker"))
    binding = WorkspaceBinding(workspace.id, build_id=workspace.latest_build.id)
    assert await backend.current_agent(binding) is None  # pending
    await clock.advance(QUEUE)
    assert await backend.current_agent(binding) is None  # starting: agents exist, the job still runs
    await clock.advance(BUILD - 0.5)
    assert await backend.current_agent(binding) is None
    await clock.advance(0.5)
    found = await backend.current_agent(binding)
    assert found is not None
    assert [(e.server, e.health) for e in found.endpoints] == [
        ("mcp", EndpointHealth.INITIALIZING),
        ("github", EndpointHealth.INITIALIZING),
    ]


async def test_current_agent_is_none_for_a_stopped_workspace(client: CoderClient, world: World) -> None:
    workspace_id = world.fake.create_workspace(unique(), "docker", state="stopped")
    assert await CoderBackend(client).current_agent(WorkspaceBinding(workspace_id)) is None


async def test_current_agent_is_none_for_a_deleted_or_unknown_workspace(client: CoderClient, world: World) -> None:
    name = unique()
    workspace_id = world.fake.create_workspace(name, "docker", state="running")
    backend = CoderBackend(client)
    assert await backend.current_agent(WorkspaceBinding(workspace_id)) is not None
    world.fake.delete_workspace(name)
    assert await backend.current_agent(WorkspaceBinding(workspace_id)) is None
    assert await backend.current_agent(WorkspaceBinding(str(uuid.uuid4()))) is None


async def test_current_agent_is_none_for_a_failed_build(client: CoderClient, world: World) -> None:
    workspace_id = world.fake.create_workspace(unique(), "docker", state="failed")
    assert await CoderBackend(client).current_agent(WorkspaceBinding(workspace_id)) is None


@pytest.mark.parametrize("url", ["http://[::1", "http://127.0.0.1:99999", "http://", "ftp://coder.example.com"])
def test_a_malformed_url_is_refused_when_the_client_is_made(url: str) -> None:
    with pytest.raises(ValueError, match=r"URL|host|port"):
        CoderClient(url, "t0ken")
