"""FakeCoder held to the Coder API spec over real loopback HTTP, with raw httpx requests.

One fake is served for the whole module (starting and stopping uvicorn costs 0.2 s), on a module-wide
MockClock; each test uses its own uniquely named workspaces and templates, so tests stay independent.
State is a function of the clock, so moving it and reading again is how every transition is checked.
"""

from __future__ import annotations

import itertools
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import httpx2
import mcp_types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

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
    WorkspaceState,
    echo_tools,
    serve_fake_coder,
)

pytestmark = pytest.mark.anyio

SIGNED_OUT = "You are signed out or your session has expired. Please sign in again to continue."
NOT_FOUND = {"message": "Resource not found or you do not have access to this resource"}
BUILD_ACTIVE = {"message": "A workspace build is already active.", "detail": "A workspace build is already active."}
JSON_TYPE = "application/json; charset=utf-8"
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d+(Z|[+-]\d{2}:\d{2})$")
# A safety net against a hung stream, in real time; never an assertion about speed.
STREAM_GUARD_S = 10.0

# Default timings (FakeVersion/FakeAgent/FakeMcpServer): queue 1 s, build 5 s, stop 2 s, connect 2 s,
# startup 3 s, MCP cold start 4 s. So a start build settles 15 s after it is created.
QUEUE, BUILD, STOP, CONNECT, STARTUP, COLD_START = 1.0, 5.0, 2.0, 2.0, 3.0, 4.0
START_SETTLED = QUEUE + BUILD + CONNECT + STARTUP + COLD_START

V1 = FakeVersion("v1", agents=[FakeAgent("main", mcp_servers=[FakeMcpServer(tools=echo_tools("search"))])])
V2 = FakeVersion(
    "v2",
    agents=[
        FakeAgent(
            "main",
            mcp_servers=[FakeMcpServer(tools=echo_tools("search", "deploy"), healthcheck=True)],
            apps=[FakeApp("code-server", healthcheck=True)],
        ),
        FakeAgent("dev-coderd-chat", parent="main"),
    ],
    parameters=[
        FakeParameter("region", options=("eu", "us"), default_value="eu"),
        FakeParameter("size", type="number", default_value="2", mutable=False),
    ],
    presets=[FakePreset("small", {"size": "1"}, default=True)],
)
DOCKER = FakeTemplate("docker", [V1, V2], display_name="Docker")


@dataclass
class World:
    clock: MockClock
    fake: FakeCoder
    coder: ServedFakeCoder


_names = itertools.count(1)


def unique(prefix: str = "ws") -> str:
    return f"{prefix}-{next(_names)}"


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    clock = MockClock()
    fake = FakeCoder(clock, templates=[DOCKER])
    with serve_fake_coder(fake) as coder:
        yield World(clock, fake, coder)


@pytest.fixture(autouse=True)
def no_leftover_faults(world: World) -> Iterator[None]:
    yield
    world.fake.clear_faults()


@pytest.fixture
async def api(world: World) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{world.coder.url}/api/v2", headers=world.coder.headers) as client:
        yield client


@pytest.fixture
async def anonymous(world: World) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{world.coder.url}/api/v2") as client:
        yield client


@pytest.fixture
async def member(world: World) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Coder-Session-Token": world.fake.member_token}
    async with httpx.AsyncClient(base_url=f"{world.coder.url}/api/v2", headers=headers) as client:
        yield client


def is_uuid(value: object) -> bool:
    return isinstance(value, str) and str(uuid.UUID(value)) == value


def agents_of(workspace: dict[str, Any]) -> list[dict[str, Any]]:
    return [agent for resource in workspace["latest_build"]["resources"] for agent in resource["agents"]]


async def create(api: httpx.AsyncClient, name: str, template_id: str, **body: Any) -> dict[str, Any]:
    response = await api.post("/users/me/workspaces", json={"name": name, "template_id": template_id, **body})
    assert response.status_code == 201, response.text
    workspace: dict[str, Any] = response.json()
    return workspace


async def read(api: httpx.AsyncClient, workspace_id: str) -> dict[str, Any]:
    response = await api.get(f"/workspaces/{workspace_id}")
    assert response.status_code == 200, response.text
    workspace: dict[str, Any] = response.json()
    return workspace


async def build(api: httpx.AsyncClient, workspace_id: str, transition: str, **body: Any) -> httpx.Response:
    return await api.post(f"/workspaces/{workspace_id}/builds", json={"transition": transition, **body})


def mcp_client(world: World, http: httpx2.AsyncClient, workspace: str, slug: str = "mcp") -> Client:
    return Client(streamable_http_client(world.coder.mcp_url(workspace, slug), http_client=http), cache=None)


async def list_tools(world: World, workspace: str, slug: str = "mcp") -> list[str]:
    """The tools the workspace's MCP server lists through the app proxy, authenticated by header."""
    async with httpx2.AsyncClient(headers=world.coder.headers) as http, mcp_client(world, http, workspace, slug) as mcp:
        listed = await mcp.list_tools()
    return [tool.name for tool in listed.tools]


async def call_tool(world: World, workspace: str, tool: str, slug: str = "mcp") -> str:
    async with httpx2.AsyncClient(headers=world.coder.headers) as http, mcp_client(world, http, workspace, slug) as mcp:
        result = await mcp.call_tool(tool, {"target": "prod"})
    [content] = result.content
    assert isinstance(content, mcp_types.TextContent)
    return content.text


# -- conventions, authentication -----------------------------------------------------------------------


async def test_buildinfo_is_public_json_with_coders_content_type(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/buildinfo")
    assert response.status_code == 200
    assert response.headers["content-type"] == JSON_TYPE
    info = response.json()
    assert info["version"].startswith("v2.27.1")
    assert is_uuid(info["deployment_id"])
    assert {"external_url", "dashboard_url", "agent_api_version"} <= info.keys()


async def test_missing_and_invalid_tokens_get_401_with_coders_bodies(
    world: World, anonymous: httpx.AsyncClient
) -> None:
    missing = await anonymous.get("/users/me")
    assert missing.status_code == 401
    assert missing.json() == {
        "message": SIGNED_OUT,
        "detail": 'Cookie "coder_session_token" or query parameter must be provided.',
    }
    unknown = await anonymous.get("/users/me", headers={"Coder-Session-Token": "abcdefghij-abcdefghijklmnopqrstuv"})
    assert unknown.status_code == 401
    assert unknown.json() == {"message": SIGNED_OUT, "detail": "API key is invalid."}
    malformed = await anonymous.get("/users/me", headers={"Coder-Session-Token": "nonsense"})
    assert malformed.status_code == 401
    assert malformed.json()["message"] == SIGNED_OUT
    assert malformed.json()["detail"].startswith("Invalid API key format")
    assert world.fake.token not in missing.text + unknown.text + malformed.text


async def test_token_is_accepted_from_header_cookie_or_query(world: World) -> None:
    token = world.fake.token
    base = f"{world.coder.url}/api/v2/users/me"
    async with httpx.AsyncClient() as http:
        by_header = await http.get(base, headers={"Coder-Session-Token": token})
        by_query = await http.get(base, params={"coder_session_token": token})
        by_cookie = await http.get(base, headers={"Cookie": f"coder_session_token={token}"})
    assert [r.status_code for r in (by_header, by_query, by_cookie)] == [200, 200, 200]


async def test_unknown_route_is_404_route_not_found(api: httpx.AsyncClient, world: World) -> None:
    response = await api.get("/no/such/route")
    assert response.status_code == 404
    assert response.json() == {"message": "Route not found."}
    assert response.headers["content-type"] == JSON_TYPE
    assert (await api.delete("/workspaces")).status_code == 405


async def test_invalid_uuid_path_parameter_is_400_with_gos_message(api: httpx.AsyncClient) -> None:
    response = await api.get("/workspaces/x")
    assert response.status_code == 400
    assert response.json() == {"message": 'Invalid UUID "x".', "detail": "invalid UUID length: 1"}
    response = await api.get("/workspacebuilds/zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz")
    assert response.json() == {
        "message": 'Invalid UUID "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz".',
        "detail": "invalid UUID format",
    }
    assert (await api.get(f"/templates/{uuid.uuid4()}")).json() == NOT_FOUND


# -- users, organizations, templates ----------------------------------------------------------------------


async def test_users_are_found_by_me_id_or_username(api: httpx.AsyncClient, world: World) -> None:
    me = (await api.get("/users/me")).json()
    assert me["username"] == "alice"
    assert me["id"] == world.fake.user.id
    assert [role["name"] for role in me["roles"]] == ["owner"]
    assert me["organization_ids"] == [world.fake.organization_id]
    assert (await api.get(f"/users/{me['id']}")).json()["username"] == "alice"
    assert (await api.get("/users/bob")).json()["id"] == world.fake.member.id
    unknown = await api.get("/users/nobody")
    assert (unknown.status_code, unknown.json()) == (404, NOT_FOUND)


async def test_organizations_list_the_default_organization(api: httpx.AsyncClient, world: World) -> None:
    [organization] = (await api.get("/organizations")).json()
    assert organization["id"] == world.fake.organization_id
    assert organization["is_default"] is True
    assert {"name", "display_name"} <= organization.keys()


async def test_templates_by_id_and_by_name_with_capitalised_build_time_stats(
    api: httpx.AsyncClient, world: World
) -> None:
    docker_id = world.fake.template_id("docker")
    listed = (await api.get("/templates")).json()
    assert docker_id in [template["id"] for template in listed]
    template = (await api.get(f"/templates/{docker_id}")).json()
    assert template["name"] == "docker"
    assert template["display_name"] == "Docker"
    assert template["active_version_id"] == world.fake.version_id("docker", "v2")
    assert template["deprecated"] is False
    assert template["require_active_version"] is False
    assert template["build_time_stats"]["start"] == {"P50": 6000, "P95": 6000}
    org = world.fake.organization_id
    for ref in (org, "coder", "default"):
        by_name = await api.get(f"/organizations/{ref}/templates/docker")
        assert by_name.json()["id"] == docker_id
    missing = await api.get(f"/organizations/{org}/templates/nope")
    assert (missing.status_code, missing.json()) == (404, NOT_FOUND)
    assert (await api.get("/organizations/elsewhere/templates/docker")).status_code == 404


async def test_template_versions_rich_parameters_and_presets(api: httpx.AsyncClient, world: World) -> None:
    docker_id = world.fake.template_id("docker")
    v2_id = world.fake.version_id("docker", "v2")
    version = (await api.get(f"/templateversions/{v2_id}")).json()
    assert (version["name"], version["template_id"], version["archived"]) == ("v2", docker_id, False)
    assert version["job"]["status"] == "succeeded"
    assert RFC3339.match(version["job"]["completed_at"])
    parameters = (await api.get(f"/templateversions/{v2_id}/rich-parameters")).json()
    assert [(p["name"], p["type"], p["mutable"], p["required"]) for p in parameters] == [
        ("region", "string", True, False),
        ("size", "number", False, False),
    ]
    assert [option["value"] for option in parameters[0]["options"]] == ["eu", "us"]
    [preset] = (await api.get(f"/templateversions/{v2_id}/presets")).json()
    assert is_uuid(preset["ID"])
    assert (preset["Name"], preset["Default"], preset["Parameters"]) == (
        "small",
        True,
        [{"Name": "size", "Value": "1"}],
    )
    versions = (await api.get(f"/templates/{docker_id}/versions")).json()
    assert [v["name"] for v in versions] == ["v1", "v2"]
    assert (await api.get(f"/templates/{docker_id}/versions/v1")).json()["id"] == world.fake.version_id("docker", "v1")


# -- creating workspaces ----------------------------------------------------------------------------------


async def test_create_workspace_is_201_with_a_pending_build_and_no_resources(
    api: httpx.AsyncClient, world: World
) -> None:
    name = unique()
    workspace = await create(api, name, world.fake.template_id("docker"))
    build = workspace["latest_build"]
    assert (workspace["name"], workspace["owner_name"], workspace["template_name"]) == (name, "alice", "docker")
    assert (build["status"], build["transition"], build["build_number"], build["job"]["status"]) == (
        "pending",
        "start",
        1,
        "pending",
    )
    assert build["resources"] == []
    assert build["template_version_id"] == workspace["template_active_version_id"]
    assert workspace["outdated"] is False
    assert all(is_uuid(workspace[key]) for key in ("id", "owner_id", "organization_id", "template_id"))
    assert all(RFC3339.match(stamp) for stamp in (workspace["created_at"], build["created_at"]))
    older_route = await api.post(
        f"/organizations/{world.fake.organization_id}/members/me/workspaces",
        json={"name": unique(), "template_version_id": world.fake.version_id("docker", "v1")},
    )
    assert older_route.status_code == 201
    assert older_route.json()["latest_build"]["template_version_name"] == "v1"
    assert older_route.json()["outdated"] is True


async def test_create_workspace_rejects_a_taken_name_with_409_and_validations(
    api: httpx.AsyncClient, world: World
) -> None:
    name = unique()
    await create(api, name, world.fake.template_id("docker"))
    again = await api.post("/users/me/workspaces", json={"name": name, "template_id": world.fake.template_id("docker")})
    assert again.status_code == 409
    assert again.json() == {
        "message": f'Workspace "{name}" already exists.',
        "validations": [{"field": "name", "detail": "This value is already in use and should be unique."}],
    }


async def test_create_workspace_validates_its_body(api: httpx.AsyncClient, world: World) -> None:
    docker_id = world.fake.template_id("docker")
    not_json = await api.post("/users/me/workspaces", content=b"{nope", headers={"content-type": "application/json"})
    assert not_json.status_code == 400
    assert not_json.json()["message"] == "Request body must be valid JSON."
    bad_name = await api.post("/users/me/workspaces", json={"name": "Not_Valid", "template_id": docker_id})
    assert bad_name.status_code == 400
    assert bad_name.json() == {
        "message": "Validation failed.",
        "validations": [
            {"field": "name", "detail": 'Validation failed for tag "workspace_name" with value: "Not_Valid"'}
        ],
    }
    unknown = str(uuid.uuid4())
    no_template = await api.post("/users/me/workspaces", json={"name": unique(), "template_id": unknown})
    assert no_template.status_code == 400
    assert no_template.json() == {
        "message": f'Template "{unknown}" doesn\'t exist.',
        "validations": [{"field": "template_id", "detail": "template not found"}],
    }
    bad_value = await api.post("/users/me/workspaces", json={"name": unique(), "template_id": 7})
    assert bad_value.json()["message"] == "Request body must be valid JSON."


async def test_create_workspace_refuses_unusable_templates_and_versions(
    api: httpx.AsyncClient, member: httpx.AsyncClient, world: World
) -> None:
    fake = world.fake
    gone_name, old_name = unique("gone"), unique("old")
    gone = fake.add_template(FakeTemplate(gone_name, [FakeVersion("v1")]))
    fake.delete_template(gone_name)
    deleted = await api.post("/users/me/workspaces", json={"name": unique(), "template_id": gone})
    assert deleted.status_code == 404
    old = fake.add_template(FakeTemplate(old_name, [FakeVersion("v1")], deprecation_message="Use docker."))
    deprecated = await api.post("/users/me/workspaces", json={"name": unique(), "template_id": old})
    assert (deprecated.status_code, deprecated.json()["detail"]) == (400, "Use docker.")
    mismatch = await api.post(
        "/users/me/workspaces",
        json={
            "name": unique(),
            "template_id": fake.template_id("docker"),
            "template_version_id": fake.version_id(old_name, "v1"),
        },
    )
    assert (mismatch.status_code, mismatch.json()["message"]) == (400, "template version doesn't match template")
    for_alice = await member.post(
        "/users/alice/workspaces", json={"name": unique(), "template_id": fake.template_id("docker")}
    )
    assert (for_alice.status_code, for_alice.json()["message"]) == (403, "Unauthorized to create workspace.")


async def test_versions_still_importing_are_406_and_failed_imports_400(api: httpx.AsyncClient, world: World) -> None:
    fake = world.fake
    name = unique("imports")
    fake.add_template(FakeTemplate(name, [FakeVersion("v1")]))
    slow = fake.add_version(name, FakeVersion("slow", import_seconds=30.0))
    broken = fake.add_version(name, FakeVersion("broken", import_error="terraform init failed"))
    importing = await api.post("/users/me/workspaces", json={"name": unique(), "template_version_id": slow})
    assert importing.status_code == 406
    assert importing.json()["message"] == "The provided template version is running. Wait for it to complete importing!"
    assert (await api.get(f"/templateversions/{slow}")).json()["job"]["status"] == "running"
    failed = await api.post("/users/me/workspaces", json={"name": unique(), "template_version_id": broken})
    assert failed.status_code == 400
    assert '"terraform init failed"' in failed.json()["message"]
    await world.clock.advance(30.0)
    imported = await api.post("/users/me/workspaces", json={"name": unique(), "template_version_id": slow})
    assert imported.status_code == 201


# -- builds and agents follow the clock -------------------------------------------------------------------


async def test_start_build_moves_through_its_states_as_the_clock_advances(api: httpx.AsyncClient, world: World) -> None:
    workspace = await create(api, unique(), world.fake.template_id("docker"))
    build_id = workspace["latest_build"]["id"]

    async def at(seconds: float) -> dict[str, Any]:
        await world.clock.advance(seconds)
        return await read(api, workspace["id"])

    starting = await at(QUEUE)
    assert (starting["latest_build"]["status"], starting["latest_build"]["job"]["status"]) == ("starting", "running")
    main, sub = agents_of(starting)
    assert (main["name"], main["status"], main["lifecycle_state"]) == ("main", "connecting", "created")
    assert [app["health"] for app in main["apps"]] == ["initializing", "initializing"]
    assert starting["health"] == {"healthy": False, "failing_agents": [main["id"], sub["id"]]}

    built = await at(BUILD)
    assert (built["latest_build"]["status"], built["latest_build"]["job"]["status"]) == ("running", "succeeded")
    assert agents_of(built)[0]["status"] == "connecting"

    connected = await at(CONNECT)
    main = agents_of(connected)[0]
    assert (main["status"], main["lifecycle_state"]) == ("connected", "starting")
    assert RFC3339.match(main["first_connected_at"])

    ready = await at(STARTUP)
    main = agents_of(ready)[0]
    assert (main["lifecycle_state"], main["health"]) == ("ready", {"healthy": True})
    assert {app["slug"]: app["health"] for app in main["apps"]} == {"mcp": "initializing", "code-server": "healthy"}
    assert ready["health"] == {"healthy": True, "failing_agents": []}

    up = await at(COLD_START)
    assert {app["slug"]: app["health"] for app in agents_of(up)[0]["apps"]}["mcp"] == "healthy"
    polled = (await api.get(f"/workspacebuilds/{build_id}")).json()
    assert polled["id"] == build_id
    assert polled["job"]["status"] == "succeeded"
    assert RFC3339.match(polled["job"]["completed_at"])


async def test_sub_agents_carry_parent_id_and_no_display_order(api: httpx.AsyncClient, world: World) -> None:
    workspace_id = world.fake.create_workspace(unique(), "docker", state="running")
    main, sub = agents_of(await read(api, workspace_id))
    assert main["parent_id"] is None
    assert (sub["name"], sub["parent_id"]) == ("dev-coderd-chat", main["id"])
    # codersdk.WorkspaceAgent has no display_order: the order lives in Coder's database only.
    assert "display_order" not in main
    assert "display_order" not in sub


async def test_stop_removes_agents_and_every_start_build_has_new_agent_ids(
    api: httpx.AsyncClient, world: World
) -> None:
    workspace_id = world.fake.create_workspace(unique(), "docker", state="running")
    first_agent = agents_of(await read(api, workspace_id))[0]["id"]

    stop = await build(api, workspace_id, "stop")
    assert stop.status_code == 201
    assert (stop.json()["transition"], stop.json()["build_number"], stop.json()["resources"]) == ("stop", 2, [])
    await world.clock.advance(QUEUE + STOP)
    stopped = await read(api, workspace_id)
    assert stopped["latest_build"]["status"] == "stopped"
    assert agents_of(stopped) == []
    assert [r["type"] for r in stopped["latest_build"]["resources"]] == ["docker_volume"]

    start = await build(api, workspace_id, "start")
    assert start.status_code == 201
    await world.clock.advance(QUEUE + BUILD)
    second_agent = agents_of(await read(api, workspace_id))[0]["id"]
    assert is_uuid(second_agent)
    assert second_agent != first_agent


async def test_update_moves_to_the_active_version_and_clears_outdated(api: httpx.AsyncClient, world: World) -> None:
    workspace_id = world.fake.create_workspace(unique(), "docker", version="v1", state="stopped")
    before = await read(api, workspace_id)
    assert before["outdated"] is True
    assert before["template_active_version_id"] == world.fake.version_id("docker", "v2")
    restart = await build(api, workspace_id, "start")
    assert restart.json()["template_version_name"] == "v1"  # no version given: the previous build's
    await world.clock.advance(QUEUE + BUILD)
    stop = await build(api, workspace_id, "stop")
    assert stop.status_code == 201
    await world.clock.advance(QUEUE + STOP)
    update = await build(api, workspace_id, "start", template_version_id=before["template_active_version_id"])
    assert update.json()["template_version_name"] == "v2"
    assert (await read(api, workspace_id))["outdated"] is False


async def test_template_requiring_the_active_version_starts_on_it(
    api: httpx.AsyncClient, member: httpx.AsyncClient, world: World
) -> None:
    fake = world.fake
    name = unique("pinned")
    fake.add_template(FakeTemplate(name, [FakeVersion("v1"), FakeVersion("v2")], require_active_version=True))
    workspace_id = fake.create_workspace(unique(), name, owner="bob", version="v1", state="stopped")
    start = await build(member, workspace_id, "start")
    assert start.status_code == 201
    assert start.json()["template_version_name"] == "v2"
    await world.clock.advance(QUEUE + BUILD)
    assert (await build(member, workspace_id, "stop")).status_code == 201
    await world.clock.advance(QUEUE + STOP)
    pinned_back = await build(member, workspace_id, "start", template_version_id=fake.version_id(name, "v1"))
    assert (pinned_back.status_code, pinned_back.json()["message"]) == (403, "cannot use non-active version")


async def test_new_build_while_one_is_active_is_409_with_the_exact_body(api: httpx.AsyncClient, world: World) -> None:
    workspace = await create(api, unique(), world.fake.template_id("docker"))
    for transition in ("stop", "start", "delete"):
        conflict = await build(api, workspace["id"], transition)
        assert (conflict.status_code, conflict.json()) == (409, BUILD_ACTIVE)
    await world.clock.advance(QUEUE + BUILD)
    assert (await build(api, workspace["id"], "stop")).status_code == 201


async def test_build_with_an_unusable_version_is_rejected(api: httpx.AsyncClient, world: World) -> None:
    fake = world.fake
    other = unique("other")
    fake.add_template(FakeTemplate(other, [FakeVersion("v1")]))
    workspace_id = fake.create_workspace(unique(), "docker", state="stopped")
    missing = await build(api, workspace_id, "start", template_version_id=str(uuid.uuid4()))
    assert (missing.status_code, missing.json()["message"]) == (400, "template version does not exist")
    foreign = await build(api, workspace_id, "start", template_version_id=fake.version_id(other, "v1"))
    assert (foreign.status_code, foreign.json()["message"]) == (400, "template version doesn't match template")
    slow = fake.add_version("docker", FakeVersion(unique("slow"), import_seconds=60.0))
    assert (await build(api, workspace_id, "start", template_version_id=slow)).status_code == 406
    broken = fake.add_version("docker", FakeVersion(unique("broken"), import_error="bad provider"))
    assert (await build(api, workspace_id, "start", template_version_id=broken)).status_code == 400
    invalid = await build(api, workspace_id, "restart")
    assert invalid.status_code == 400
    assert invalid.json() == {
        "message": "Validation failed.",
        "validations": [{"field": "transition", "detail": 'Validation failed for tag "oneof" with value: "restart"'}],
    }


async def test_rich_parameters_resolve_and_immutable_ones_cannot_change(api: httpx.AsyncClient, world: World) -> None:
    created = await create(
        api, unique(), world.fake.template_id("docker"), rich_parameter_values=[{"name": "region", "value": "us"}]
    )
    bad_option = await api.post(
        "/users/me/workspaces",
        json={
            "name": unique(),
            "template_id": world.fake.template_id("docker"),
            "rich_parameter_values": [{"name": "region", "value": "mars"}],
        },
    )
    assert (bad_option.status_code, bad_option.json()["message"]) == (400, 'Unable to validate parameter "region"')
    await world.clock.advance(QUEUE + BUILD)
    changed = await build(api, created["id"], "stop", rich_parameter_values=[{"name": "size", "value": "8"}])
    assert changed.status_code == 400
    assert "is not mutable" in changed.json()["detail"]
    with_preset = await create(
        api, unique(), world.fake.template_id("docker"), rich_parameter_values=[{"name": "size", "value": "1"}]
    )
    [preset] = (await api.get(f"/templateversions/{with_preset['latest_build']['template_version_id']}/presets")).json()
    assert with_preset["latest_build"]["template_version_preset_id"] == preset["ID"]


async def test_cancel_completes_a_pending_job_at_once_and_a_running_one_via_canceling(
    api: httpx.AsyncClient, world: World
) -> None:
    pending = await create(api, unique(), world.fake.template_id("docker"))
    build_id = pending["latest_build"]["id"]
    canceled = await api.patch(f"/workspacebuilds/{build_id}/cancel")
    assert (canceled.status_code, canceled.json()) == (200, {"message": "Job has been marked as canceled..."})
    now = (await api.get(f"/workspacebuilds/{build_id}")).json()
    assert (now["status"], now["job"]["status"]) == ("canceled", "canceled")
    again = await api.patch(f"/workspacebuilds/{build_id}/cancel")
    assert (again.status_code, again.json()) == (400, {"message": "Job has already completed!"})

    running = await create(api, unique(), world.fake.template_id("docker"))
    build_id = running["latest_build"]["id"]
    await world.clock.advance(QUEUE)
    wrong = await api.patch(f"/workspacebuilds/{build_id}/cancel", params={"expect_status": "pending"})
    assert (wrong.status_code, wrong.json()) == (412, {"message": "Job is not in the expected state."})
    assert (await api.patch(f"/workspacebuilds/{build_id}/cancel")).status_code == 200
    canceling = (await api.get(f"/workspacebuilds/{build_id}")).json()
    assert (canceling["status"], canceling["job"]["status"]) == ("canceling", "canceling")
    assert (await build(api, running["id"], "stop")).json() == BUILD_ACTIVE
    await world.clock.advance(1.0)
    done = (await api.get(f"/workspacebuilds/{build_id}")).json()
    assert (done["status"], done["resources"]) == ("canceled", [])


async def test_agent_timeouts_and_startup_failures(api: httpx.AsyncClient, world: World) -> None:
    fake = world.fake
    name = unique("flaky")
    agents = [
        FakeAgent("lost", never_connects=True, connection_timeout_seconds=60),
        FakeAgent("broken", startup_outcome="start_error"),
        FakeAgent("slow", startup_outcome="start_timeout", ready_after_timeout_seconds=10.0),
    ]
    fake.add_template(FakeTemplate(name, [FakeVersion("v1", agents=agents)]))
    workspace = await create(api, unique(), fake.template_id(name))
    await world.clock.advance(QUEUE + BUILD + CONNECT + STARTUP)
    lost, broken, slow = agents_of(await read(api, workspace["id"]))
    assert (lost["status"], lost["lifecycle_state"]) == ("connecting", "created")
    assert broken["lifecycle_state"] == "start_error"
    assert broken["health"] == {"healthy": False, "reason": "agent startup script exited with an error"}
    assert slow["lifecycle_state"] == "start_timeout"
    await world.clock.advance(60.0)
    lost, _, slow = agents_of(await read(api, workspace["id"]))
    assert lost["status"] == "timeout"
    assert slow["lifecycle_state"] == "ready"


# -- reading workspaces -----------------------------------------------------------------------------------


async def test_lookup_by_owner_and_name_is_exact(api: httpx.AsyncClient, world: World) -> None:
    name = f"{unique()}-exact"
    workspace_id = world.fake.create_workspace(name, "docker", state="running")
    for user in ("me", "alice", world.fake.user.id):
        found = await api.get(f"/users/{user}/workspace/{name}")
        assert found.json()["id"] == workspace_id
    assert (await api.get(f"/users/me/workspace/{name.upper()}")).json()["id"] == workspace_id
    partial = await api.get(f"/users/me/workspace/{name[:-1]}")
    assert (partial.status_code, partial.json()) == (404, NOT_FOUND)


async def test_deleted_workspace_is_410_by_id_and_404_by_name_unless_asked(
    api: httpx.AsyncClient, world: World
) -> None:
    name = unique()
    workspace_id = world.fake.create_workspace(name, "docker", state="stopped")
    deletion = await build(api, workspace_id, "delete")
    assert deletion.status_code == 201
    assert (await read(api, workspace_id))["latest_build"]["status"] == "pending"
    await world.clock.advance(QUEUE)
    assert (await read(api, workspace_id))["latest_build"]["status"] == "deleting"
    await world.clock.advance(STOP)
    gone = await api.get(f"/workspaces/{workspace_id}")
    assert gone.status_code == 410
    assert gone.json() == {
        "message": f'Workspace "{workspace_id}" was deleted, you can view this workspace by specifying '
        "'?deleted=true' and trying again."
    }
    shown = await api.get(f"/workspaces/{workspace_id}", params={"include_deleted": "true"})
    assert shown.json()["latest_build"]["status"] == "deleted"
    unclear = await api.get(f"/workspaces/{workspace_id}", params={"include_deleted": "maybe"})
    assert unclear.status_code == 400
    assert unclear.json()["validations"] == [{"field": "deleted", "detail": "Must be a valid boolean"}]
    by_name = await api.get(f"/users/me/workspace/{name}")
    assert (by_name.status_code, by_name.json()) == (404, NOT_FOUND)
    assert (await api.get(f"/users/me/workspace/{name}", params={"include_deleted": "true"})).status_code == 200
    restart = await build(api, workspace_id, "start")
    assert (restart.status_code, restart.json()["message"]) == (409, "Cannot start a deleted workspace!")
    listed = (await api.get("/workspaces", params={"q": f"name:{name}"})).json()
    assert listed == {"workspaces": [], "count": 0}


async def test_listing_filters_by_owner_name_template_and_status(
    api: httpx.AsyncClient, member: httpx.AsyncClient, world: World
) -> None:
    fake = world.fake
    tag = unique("list")
    running = fake.create_workspace(f"{tag}-a", "docker", state="running")
    stopped = fake.create_workspace(f"{tag}-b", "docker", state="stopped")
    bobs = fake.create_workspace(f"{tag}-c", "docker", owner="bob", state="running")

    async def ids(q: str, **params: Any) -> tuple[list[str], int]:
        response = await api.get("/workspaces", params={"q": q, **params})
        assert response.status_code == 200, response.text
        return [w["id"] for w in response.json()["workspaces"]], response.json()["count"]

    assert await ids(f"owner:me name:{tag}") == ([running, stopped], 2)
    assert await ids(f"name:{tag}") == ([running, bobs, stopped], 3)  # admin, no owner: everyone's
    assert await ids(f"owner:bob name:{tag}") == ([bobs], 1)
    assert await ids(f"owner:me name:{tag} status:stopped") == ([stopped], 1)
    assert await ids(f"owner:me name:{tag} template:docker", limit="1", offset="1") == ([stopped], 2)
    assert await ids(f"owner:me name:{tag} template:nope") == ([], 0)
    mine = (await member.get("/workspaces", params={"q": f"name:{tag}"})).json()
    assert [w["id"] for w in mine["workspaces"]] == [bobs]
    bad = await api.get("/workspaces", params={"q": "colour:blue"})
    assert bad.status_code == 400
    assert bad.json() == {
        "message": "Invalid workspace search query.",
        "validations": [{"field": "colour", "detail": '"colour" is not a valid query param'}],
    }
    assert (await api.get("/workspaces", params={"limit": "lots"})).status_code == 400


async def test_members_cannot_see_other_users_workspaces(member: httpx.AsyncClient, world: World) -> None:
    name = unique()
    workspace_id = world.fake.create_workspace(name, "docker", state="running")
    build_id = world.fake.workspace(workspace_id)["latest_build"]["id"]
    for path in (f"/workspaces/{workspace_id}", f"/users/alice/workspace/{name}", f"/workspacebuilds/{build_id}"):
        response = await member.get(path)
        assert (response.status_code, response.json()) == (404, NOT_FOUND)
    assert (await build(member, workspace_id, "stop")).status_code == 404


# -- the app proxy and workspace MCP servers --------------------------------------------------------------


async def test_mcp_app_is_502_until_its_server_is_up_then_lists_tools(api: httpx.AsyncClient, world: World) -> None:
    name = unique()
    workspace = await create(api, name, world.fake.template_id("docker"))
    url = world.coder.mcp_url(name)
    async with httpx.AsyncClient(headers=world.coder.headers) as proxy:
        assert (await proxy.post(url, json={})).status_code == 404  # no agent yet: the build is pending
        for step in (QUEUE, BUILD, CONNECT, STARTUP, COLD_START - 0.5):
            await world.clock.advance(step)
            assert (await proxy.post(url, json={})).status_code == 502
        await world.clock.advance(0.5)
        unknown = await proxy.post(world.coder.mcp_url(name, "other-mcp"), json={})
        assert unknown.status_code == 404
        app_root = world.coder.app_url(name)
        redirect = await proxy.get(app_root.rstrip("/"))
        assert (redirect.status_code, redirect.headers["location"]) == (307, app_root)
    async with httpx.AsyncClient() as anonymous:
        signed_out = await anonymous.post(url, json={})
        # Coder sends a browser to its login page, rather than answering 401 JSON as the API does.
        assert (signed_out.status_code, httpx.URL(signed_out.headers["location"]).path) == (303, "/login")
    assert await list_tools(world, name) == ["search", "deploy"]
    assert world.fake.mcp_list_calls(workspace["id"]) == 1
    assert world.fake.request_count("POST /@{owner}/{workspace_and_agent}/apps/{slug}/{path}") > 0


async def test_mcp_tools_follow_the_agents_version_across_an_update(api: httpx.AsyncClient, world: World) -> None:
    name = unique()
    workspace_id = world.fake.create_workspace(name, "docker", version="v1", state="running")
    assert await list_tools(world, name) == ["search"]
    assert (await build(api, workspace_id, "stop")).status_code == 201
    await world.clock.advance(QUEUE + STOP)
    update = await build(api, workspace_id, "start", template_version_id=world.fake.version_id("docker", "v2"))
    assert update.status_code == 201
    await world.clock.advance(START_SETTLED)
    assert await list_tools(world, name) == ["search", "deploy"]
    assert world.fake.mcp_list_calls(name) == 2
    assert await call_tool(world, name, "deploy") == "deploy called with {'target': 'prod'}"
    assert world.fake.mcp_tool_calls(name) == 1


# -- watching ---------------------------------------------------------------------------------------------


async def _next_event(lines: AsyncIterator[str]) -> tuple[str, Any]:
    kind, data = "", None
    async for line in lines:
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data = json.loads(line.removeprefix("data: "))
        elif line == "" and kind:
            return kind, data
    raise AssertionError("the stream ended")


async def test_watch_sends_ping_then_the_workspace_then_each_change(api: httpx.AsyncClient, world: World) -> None:
    workspace = await create(api, unique(), world.fake.template_id("docker"))
    with anyio.fail_after(STREAM_GUARD_S):
        async with api.stream("GET", f"/workspaces/{workspace['id']}/watch") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.aiter_lines()
            assert await _next_event(lines) == ("ping", None)
            kind, first = await _next_event(lines)
            assert (kind, first["id"], first["latest_build"]["status"]) == ("data", workspace["id"], "pending")
            await world.clock.advance(QUEUE)
            kind, second = await _next_event(lines)
            assert (kind, second["latest_build"]["status"]) == ("data", "starting")
            await world.clock.advance(15.0)
            kinds = {(await _next_event(lines))[0], (await _next_event(lines))[0]}
            assert kinds == {"ping", "data"}


async def test_watch_stream_ends_cleanly_when_the_server_stops(clock: MockClock) -> None:
    fake = FakeCoder(clock, templates=[DOCKER])
    workspace_id = fake.create_workspace("dev", "docker", state="running")
    coder = serve_fake_coder(fake).start()
    try:
        with anyio.fail_after(STREAM_GUARD_S):
            async with (
                httpx.AsyncClient(headers=coder.headers) as http,
                http.stream("GET", f"{coder.url}/api/v2/workspaces/{workspace_id}/watch") as stream,
            ):
                lines = stream.aiter_lines()
                assert (await _next_event(lines))[0] == "ping"
                assert (await _next_event(lines))[0] == "data"
                async with anyio.create_task_group() as group:
                    group.start_soon(anyio.to_thread.run_sync, coder.stop)
                    remaining = [line async for line in lines]
        assert remaining == []
    finally:
        coder.stop()


# -- faults -----------------------------------------------------------------------------------------------


async def test_failed_build_carries_error_and_error_code(api: httpx.AsyncClient, world: World) -> None:
    workspace_id = world.fake.create_workspace(unique(), "docker", state="stopped")
    world.fake.fail_next_build("quota exceeded: 2 of 2 workspaces", "INSUFFICIENT_QUOTA", transition="start")
    started = await build(api, workspace_id, "start")
    assert started.status_code == 201
    await world.clock.advance(QUEUE + BUILD)
    failed = (await read(api, workspace_id))["latest_build"]
    assert (failed["status"], failed["job"]["status"]) == ("failed", "failed")
    assert (failed["job"]["error"], failed["job"]["error_code"]) == (
        "quota exceeded: 2 of 2 workspaces",
        "INSUFFICIENT_QUOTA",
    )
    assert failed["resources"] == []
    assert world.fake.pending_faults == 0


async def test_server_error_burst_hits_only_the_next_requests(api: httpx.AsyncClient, world: World) -> None:
    world.fake.fail_requests(2, status=503, route="GET /api/v2/users/{user}")
    assert (await api.get("/organizations")).status_code == 200  # another route: untouched
    first, second, third = [await api.get("/users/me") for _ in range(3)]
    assert [first.status_code, second.status_code, third.status_code] == [503, 503, 200]
    assert first.headers["content-type"] == JSON_TYPE
    world.fake.fail_requests(1, status=500)
    assert (await api.get("/templates")).status_code == 500


async def test_rate_limit_answers_429_with_retry_after(api: httpx.AsyncClient, world: World) -> None:
    before = world.fake.request_count("GET /api/v2/organizations")
    world.fake.rate_limit(1, retry_after_seconds=3)
    limited = await api.get("/organizations")
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "3"
    assert "rate limited" in limited.json()["message"]
    assert (await api.get("/organizations")).status_code == 200
    assert world.fake.request_count("GET /api/v2/organizations") == before + 2


async def test_revoked_token_is_401_from_then_on(world: World) -> None:
    token = world.fake.issue_token("alice")
    async with httpx.AsyncClient(base_url=f"{world.coder.url}/api/v2", headers={"Coder-Session-Token": token}) as http:
        assert (await http.get("/users/me")).status_code == 200
        world.fake.revoke_token(token)
        revoked = await http.get("/users/me")
    assert (revoked.status_code, revoked.json()) == (401, {"message": SIGNED_OUT, "detail": "API key is invalid."})


async def test_stalled_build_stays_active_until_canceled(api: httpx.AsyncClient, world: World) -> None:
    workspace_id = world.fake.create_workspace(unique(), "docker", state="running")
    world.fake.stall_next_build()
    stop = await build(api, workspace_id, "stop")
    await world.clock.advance(3600.0)
    assert (await read(api, workspace_id))["latest_build"]["status"] == "stopping"
    conflict = await build(api, workspace_id, "start")
    assert (conflict.status_code, conflict.json()) == (409, BUILD_ACTIVE)
    assert (await api.patch(f"/workspacebuilds/{stop.json()['id']}/cancel")).status_code == 200
    await world.clock.advance(1.0)
    assert (await build(api, workspace_id, "start")).status_code == 201


async def test_workspace_deleted_mid_turn_reads_410_and_its_proxy_404(api: httpx.AsyncClient, world: World) -> None:
    name = unique()
    workspace_id = world.fake.create_workspace(name, "docker", state="running")
    world.fake.delete_workspace(name)
    assert (await api.get(f"/workspaces/{workspace_id}")).status_code == 410
    assert (await api.get(f"/users/me/workspace/{name}")).status_code == 404
    async with httpx.AsyncClient(headers=world.coder.headers) as proxy:
        assert (await proxy.post(world.coder.mcp_url(name), json={})).status_code == 404


# -- python-side helpers ----------------------------------------------------------------------------------


async def test_helper_places_workspaces_in_a_state_without_counting_api_builds(
    api: httpx.AsyncClient, world: World
) -> None:
    fake = world.fake
    builds_before = fake.builds_created
    states: tuple[WorkspaceState, ...] = ("pending", "starting", "running", "stopped", "failed")
    ids = {state: fake.create_workspace(unique(), "docker", state=state) for state in states}
    read_back = {
        state: (await read(api, workspace_id))["latest_build"]["status"] for state, workspace_id in ids.items()
    }
    assert read_back == {
        "pending": "pending",
        "starting": "starting",
        "running": "running",
        "stopped": "stopped",
        "failed": "failed",
    }
    running = agents_of(await read(api, ids["running"]))[0]
    assert (running["status"], running["lifecycle_state"]) == ("connected", "ready")
    assert {app["slug"]: app["health"] for app in running["apps"]}["mcp"] == "healthy"
    assert [b["transition"] for b in fake.builds(ids["stopped"])] == ["start", "stop"]
    assert fake.builds_created == builds_before
    await create(api, unique(), fake.template_id("docker"))
    assert fake.builds_created == builds_before + 1


def test_config_rejects_what_coder_would_not_accept() -> None:
    with pytest.raises(ValueError, match="must be 'mcp' or end in '-mcp'"):
        FakeMcpServer(slug="tools")
    with pytest.raises(ValueError, match="unknown parent"):
        FakeVersion("v1", agents=[FakeAgent("main", parent="ghost")])
    with pytest.raises(ValueError, match="must import at once"):
        FakeTemplate("t", [FakeVersion("v1", import_seconds=5.0)], active_version="v1")


def test_reprs_never_show_the_token(world: World) -> None:
    assert world.fake.token not in repr(world.fake) + repr(world.coder)
