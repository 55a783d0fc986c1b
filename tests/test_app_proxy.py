"""Coder's app proxy as Coder answers it, in both ways it serves an app, and what reaches the server behind it.

Every test runs with the MCP app served at its path and again as a subdomain app (``subdomain = true``)
under the deployment's wildcard access URL, which the served fake resolves to loopback with no DNS. A real
MCP server (`WorkspaceMCPServer`, which records every request it receives) runs behind FakeCoder's app
proxy over loopback; the real runtime, `CoderBackend`, `httpx2` and `mcp` clients drive whole turns.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import anyio
import httpx
import pytest

from chat_mcp_primer import Chat, ChatRuntime, ModelResponse, WorkspaceBinding
from chat_mcp_primer.events import Events
from chat_mcp_primer.testing import (
    EventRecorder,
    FakeAgent,
    FakeCoder,
    FakeMcpServer,
    FakeTemplate,
    FakeVersion,
    MockClock,
    ScriptedModel,
    SeenRequest,
    ServedFakeCoder,
    WorkspaceMCPServer,
    WorkspaceState,
    call,
    echo_tools,
    serve_fake_coder,
)
from chat_mcp_primer.tools import CoderWorkspaces
from chat_mcp_primer.workspace import AgentMcp, EndpointHealth, McpEndpoint
from chat_mcp_primer.workspace.coder import TOKEN_COOKIE, TOKEN_HEADER, CoderBackend, CoderClient
from chat_mcp_primer.workspace_mcp import ListingLimits, MemoryToolCache, Outcome, SessionSettings
from chat_mcp_primer.workspace_mcp._discovery import Discovery, DiscoveryResult
from chat_mcp_primer.workspace_mcp._failures import LOGIN_REDIRECT
from chat_mcp_primer.workspace_mcp._sessions import McpSessions

pytestmark = pytest.mark.anyio

# A JSON-RPC request any MCP server answers (or refuses) without a session: enough for the proxy to forward.
PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
# Guards against hangs in real time (the servers answer from other threads); never an assertion about speed.
GUARD_S = 10


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the workspace server and FakeCoder serve on uvicorn threads; one backend is enough


WILDCARD = "*.apps.coder.test"
# The host the subdomain app of alice's workspace "dev" is served at (its port is the fake's).
DEV_APP_HOST = "mcp--main--dev--alice.apps.coder.test"
MODES = ["path", "subdomain"]


@pytest.fixture(params=MODES)
def subdomain(request: pytest.FixtureRequest) -> bool:
    """Whether the MCP app is a subdomain app (else a path-based one)."""
    return bool(request.param == "subdomain")


@pytest.fixture
def workspace_server() -> Iterator[WorkspaceMCPServer]:
    # Configured as a server behind a deployment is: it answers the app's host the proxy passes on.
    with WorkspaceMCPServer(
        echo_tools("search"), name="behind-the-proxy", allowed_hosts=[f"{DEV_APP_HOST}:*"]
    ) as server:
        yield server


@pytest.fixture
def fake(clock: MockClock, workspace_server: WorkspaceMCPServer, subdomain: bool) -> FakeCoder:
    upstream = workspace_server.url.removesuffix("/mcp")
    server = FakeMcpServer(cold_start_seconds=0.0, upstream=upstream, subdomain=subdomain)
    return FakeCoder(
        clock,
        templates=[FakeTemplate("docker", [FakeVersion("v1", agents=[FakeAgent(mcp_servers=[server])])])],
        wildcard_access_url=WILDCARD,
    )


def token_seen(seen: list[SeenRequest], token: str) -> list[str]:
    """Every text of the recorded requests that holds the token (or its secret half)."""
    secret = token.split("-", 1)[1]
    return [text for request in seen for text in request.texts() if token in text or secret in text]


async def test_a_whole_turn_hands_the_session_token_to_no_server_in_the_workspace(
    clock: MockClock,
    fake: FakeCoder,
    coder: ServedFakeCoder,
    workspace_server: WorkspaceMCPServer,
    event_log: EventRecorder,
    subdomain: bool,
) -> None:
    workspace_id = fake.create_workspace("dev", "docker", state="running")
    model = ScriptedModel(
        [
            ModelResponse(tool_calls=(call("mcp__search", json.dumps({"query": "primer"})),)),
            ModelResponse(text="Found it."),
        ]
    )
    async with CoderClient(coder.url, coder.token, clock=clock) as client:
        runtime = ChatRuntime(model, workspaces=CoderWorkspaces(CoderBackend(client)), clock=clock, on_event=event_log)
        async with clock.autojump(), runtime:
            result = await runtime.run_turn(
                Chat(id="chat-1", owner="alice", workspace=WorkspaceBinding(workspace_id)), "search the docs"
            )

    # Discovery and the call went through the proxy to the server: the turn used its tool.
    assert "mcp__search" in model.offered[0]
    assert workspace_server.call_calls == 1
    assert any("search called with" in (m.result.text if m.result else "") for m in result.added)
    seen = workspace_server.seen
    assert len(seen) >= 2  # at least the handshake and the call: the recorder did see the turn's requests
    assert token_seen(seen, coder.token) == []
    assert not any(name.lower() == TOKEN_HEADER.lower() for request in seen for name, _ in request.headers)
    # The requests came the way the app is served: to the app's own host, or to the deployment's.
    hosts = {dict(request.headers)["host"].rsplit(":", 1)[0] for request in seen}
    assert hosts == ({DEV_APP_HOST} if subdomain else {"127.0.0.1"})


async def test_a_token_sent_as_a_header_would_reach_the_server_as_real_coder_forwards_it(
    coder: ServedFakeCoder, workspace_server: WorkspaceMCPServer, subdomain: bool
) -> None:
    """The recorder sees forwarded headers: the old way (the token as a header) leaks, the cookie does not."""
    url = coder.mcp_url("dev", subdomain=subdomain)
    coder.fake.create_workspace("dev", "docker", state="running")
    async with httpx.AsyncClient(headers=MCP_HEADERS) as http:
        by_header = await http.post(url, json=PING, headers={TOKEN_HEADER: coder.token})
        leaked = token_seen(workspace_server.seen, coder.token)
        by_cookie = await http.post(url, json=PING, headers={"Cookie": f"{TOKEN_COOKIE}={coder.token}"})
    # Both were let through to the server (neither sent to the login page).
    assert by_header.status_code != 303
    assert by_cookie.status_code != 303
    assert leaked == [coder.token]  # forwarded as it came, as Coder's proxy does
    assert len(workspace_server.seen) == 2
    assert token_seen(workspace_server.seen[1:], coder.token) == []


async def test_the_proxy_strips_only_coders_cookies_and_forwards_everything_else(
    coder: ServedFakeCoder, workspace_server: WorkspaceMCPServer, subdomain: bool
) -> None:
    coder.fake.create_workspace("dev", "docker", state="running")
    cookies = (
        f"theme=dark; {TOKEN_COOKIE}={coder.token}; coder_signed_app_token=signed; "
        "coder_path_app_session_token=app; oauth_state=state; app_session=kept"
    )
    async with httpx.AsyncClient(headers=MCP_HEADERS) as http:
        url = coder.mcp_url("dev", subdomain=subdomain)
        await http.post(url + "?page=2", json=PING, headers={"Cookie": cookies, "X-Trace": "abc"})
    [request] = workspace_server.seen
    headers = dict(request.headers)
    assert headers["cookie"] == "theme=dark; app_session=kept"
    assert headers["x-trace"] == "abc"
    assert request.query_string == "page=2"
    assert request.path == "/mcp"
    # The host is passed on as the client named it, as Go's reverse proxy under Coder's does.
    assert headers["host"] == httpx.URL(url).netloc.decode()


# -- how the app proxy refuses, and what discovery makes of it ---------------------------------------------


def template(*, subdomain: bool) -> FakeTemplate:
    server = FakeMcpServer(tools=echo_tools("search"), cold_start_seconds=0.0, subdomain=subdomain)
    return FakeTemplate("docker", [FakeVersion("v1", agents=[FakeAgent(mcp_servers=[server])])])


PATH_APPS_DISABLED = (
    "the app proxy refused the request (403): path-based apps are disabled on this deployment; "
    "serve the MCP app as a subdomain app (subdomain = true)"
)
NOT_FOUND = "the app proxy found no such application for this user (404 Application Not Found)"
OFFLINE = "the app proxy says the workspace is offline (400 Workspace Offline)"
HOST_REFUSED = (
    "the server refused the Host header the app proxy passes on (421): allow the deployment's app host "
    "names in its DNS-rebinding protection"
)
UNAVAILABLE = "the app proxy could not reach the app (502): its agent is not connected or its server is not up yet"


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str
    worth_retrying: bool


@dataclass(frozen=True, slots=True)
class Row:
    """One way the app proxy answers an MCP client (the deployment, the workspace, whose token is used),
    and what discovery makes of it in each mode: a refusal, or None for the tools found."""

    name: str
    path: Refusal | None
    subdomain: Refusal | None
    state: WorkspaceState = "running"
    owner: str = "alice"
    token_of: str = "alice"
    revoked: bool = False
    options: Mapping[str, bool] = field(default_factory=dict)

    def expected(self, subdomain: bool) -> Refusal | None:
        return self.subdomain if subdomain else self.path


SIGNED_OUT = Refusal(LOGIN_REDIRECT, worth_retrying=False)
ROWS = [
    # A path-based app is sent to the login page; a subdomain app to the app sign-in on the access URL.
    Row("signed-out", path=SIGNED_OUT, subdomain=SIGNED_OUT, revoked=True),
    # The switch covers path-based apps only: subdomain apps are how such a deployment serves them.
    Row(
        "path-apps-disabled",
        path=Refusal(PATH_APPS_DISABLED, worth_retrying=False),
        subdomain=None,
        options={"disable_path_apps": True},
    ),
    Row(
        "a-member-on-another-users-app",
        path=Refusal(NOT_FOUND, worth_retrying=False),
        subdomain=Refusal(NOT_FOUND, worth_retrying=False),
        token_of="bob",
    ),
    # alice is a site owner (admin): path-based apps are owner-only all the same; a subdomain app follows
    # Coder's RBAC, which lets a site owner in.
    Row(
        "a-site-owner-on-another-users-app", path=Refusal(NOT_FOUND, worth_retrying=False), subdomain=None, owner="bob"
    ),
    Row("workspace-offline", path=Refusal(OFFLINE, True), subdomain=Refusal(OFFLINE, True), state="stopped"),
    Row(
        "agent-not-connected",
        path=Refusal(UNAVAILABLE, True),
        subdomain=Refusal(UNAVAILABLE, True),
        state="starting",
    ),
]


async def attempt_once(clock: MockClock, endpoint: McpEndpoint) -> DiscoveryResult:
    """One discovery attempt, over the real clients, at an MCP endpoint behind the proxy."""
    events = Events(clock.now, EventRecorder())
    async with McpSessions(clock, SessionSettings(), events) as sessions:
        discovery = Discovery(sessions, MemoryToolCache(), clock, ListingLimits(), events)
        with anyio.fail_after(GUARD_S):
            return await discovery.attempt(AgentMcp("ws", "agent", (endpoint,)))


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.name)
async def test_each_app_proxy_refusal_has_its_own_reason_and_says_whether_to_retry(
    clock: MockClock, row: Row, subdomain: bool
) -> None:
    fake = FakeCoder(clock, templates=[template(subdomain=subdomain)], wildcard_access_url=WILDCARD, **row.options)
    fake.create_workspace("dev", "docker", owner=row.owner, state=row.state)
    if row.state == "starting":
        await clock.advance(5.0 + 1.0)  # the build succeeded; the agent is still connecting (2 s)
    token = fake.issue_token(row.token_of)
    if row.revoked:
        fake.revoke_token(token)
    with serve_fake_coder(fake) as coder:
        url = coder.mcp_url("dev", owner=row.owner, subdomain=subdomain)
        endpoint = McpEndpoint(server="mcp", url=url, headers={"Cookie": f"{TOKEN_COOKIE}={token}"}, origin=url)
        result = await attempt_once(clock, endpoint)
    expected = row.expected(subdomain)
    if expected is None:
        assert result.outcome is Outcome.OK
        assert [tool.name for tool in result.tools] == ["search"]
        return
    assert result.outcome is Outcome.ERROR
    assert dict(result.failures) == {"mcp": expected.reason}
    assert result.futile is not expected.worth_retrying
    # The refusal never reached the sign-in page nor anything behind the proxy.
    assert fake.mcp_list_calls("dev", owner=row.owner) == 0


async def test_a_site_owner_reaches_another_users_path_app_only_where_the_deployment_allows_it(
    clock: MockClock,
) -> None:
    fake = FakeCoder(clock, templates=[template(subdomain=False)], path_app_site_owner_access=True)
    fake.create_workspace("dev", "docker", owner="bob")
    with serve_fake_coder(fake) as coder:
        url = coder.mcp_url("dev", owner="bob")
        endpoint = McpEndpoint(server="mcp", url=url, headers={"Cookie": f"{TOKEN_COOKIE}={fake.token}"})
        result = await attempt_once(clock, endpoint)
    assert result.outcome is Outcome.OK
    assert [tool.name for tool in result.tools] == ["search"]


async def test_a_refusal_for_good_ends_the_primer_at_once_and_the_turn_stops_attempting(
    clock: MockClock, event_log: EventRecorder, subdomain: bool
) -> None:
    with contextlib.ExitStack() as stack:
        if subdomain:
            # A server that keeps the SDK's loopback-only Host check refuses the app's own host, for good.
            refusing = stack.enter_context(WorkspaceMCPServer(echo_tools("search"), name="loopback-only"))
            server = FakeMcpServer(cold_start_seconds=0.0, upstream=refusing.url.removesuffix("/mcp"), subdomain=True)
            version = FakeVersion("v1", agents=[FakeAgent(mcp_servers=[server])])
            fake = FakeCoder(clock, templates=[FakeTemplate("docker", [version])], wildcard_access_url=WILDCARD)
            reason = HOST_REFUSED
        else:
            fake = FakeCoder(clock, templates=[template(subdomain=False)], disable_path_apps=True)
            reason = PATH_APPS_DISABLED
        create = call("create_workspace", json.dumps({"template_id": fake.template_id("docker"), "name": "dev"}))
        model = ScriptedModel(
            [
                ModelResponse(tool_calls=(create,)),
                ModelResponse(tool_calls=(call("start_workspace"),)),  # already running: would prime again
                ModelResponse(tool_calls=(call("list_templates"),)),
                ModelResponse(text="The workspace tools are not reachable on this deployment."),
            ]
        )
        coder = stack.enter_context(serve_fake_coder(fake))
        async with CoderClient(coder.url, coder.token, clock=clock) as client:
            runtime = ChatRuntime(
                model, workspaces=CoderWorkspaces(CoderBackend(client)), clock=clock, on_event=event_log
            )
            async with clock.autojump(), runtime:
                await runtime.run_turn(Chat(id="chat-1", owner="alice"), "set me up")

    # The primer's first attempt was refused for good: it stopped there, without spending its budget.
    [gave_up] = event_log.named("primer.gave_up")
    assert gave_up.fields == {"attempts": 1, "outcome": "error", "futile": True, "chat_id": "chat-1"}
    [futile] = event_log.named("discovery.futile")
    assert futile.fields["servers"] == ["mcp"]
    # No later step, and no later readiness, tried that workspace's servers again in this turn.
    assert len(event_log.named("primer.started")) == 1
    assert [e.fields["reason"] for e in event_log.named("discovery.server_failed")] == [reason]
    assert len(model.offered) == 4  # the turn itself went on to the model's answer


async def test_the_proxy_refuses_at_me_in_an_app_url(coder: ServedFakeCoder) -> None:
    coder.fake.create_workspace("dev", "docker", state="running")
    async with httpx.AsyncClient(headers={**MCP_HEADERS, "Cookie": f"{TOKEN_COOKIE}={coder.token}"}) as http:
        refused = await http.post(coder.mcp_url("dev", owner="me"), json=PING)
    assert refused.status_code == 404
    assert "Applications must be accessed with the full username, not @me." in refused.text


async def test_an_mcp_app_without_a_healthcheck_is_disabled_unknown_and_its_tools_are_found_all_the_same(
    clock: MockClock, event_log: EventRecorder, subdomain: bool
) -> None:
    # The server declares no healthcheck, as most templates.
    fake = FakeCoder(clock, templates=[template(subdomain=subdomain)], wildcard_access_url=WILDCARD)
    create = call("create_workspace", json.dumps({"template_id": fake.template_id("docker"), "name": "dev"}))
    model = ScriptedModel([ModelResponse(tool_calls=(create,)), ModelResponse(text="Ready.")])
    with serve_fake_coder(fake) as coder:
        async with CoderClient(coder.url, coder.token, clock=clock) as client:
            backend = CoderBackend(client)
            runtime = ChatRuntime(model, workspaces=CoderWorkspaces(backend), clock=clock, on_event=event_log)
            async with clock.autojump(), runtime:
                result = await runtime.run_turn(Chat(id="chat-1", owner="alice"), "set me up")
            assert result.chat.workspace is not None
            agent = await backend.current_agent(result.chat.workspace)
    assert [app["health"] for app in fake.workspace("dev")["latest_build"]["resources"][0]["agents"][0]["apps"]] == [
        "disabled"
    ]
    assert agent is not None
    assert [endpoint.health for endpoint in agent.endpoints] == [EndpointHealth.UNKNOWN]  # never "unhealthy"
    assert [httpx.URL(endpoint.url).host for endpoint in agent.endpoints] == [
        DEV_APP_HOST if subdomain else "127.0.0.1"
    ]
    # No health event could say the server came up: the primer found its tools by asking.
    assert event_log.named("primer.succeeded")
    assert "mcp__search" in model.offered[-1]


async def test_a_session_token_revoked_mid_turn_makes_the_tool_call_say_the_proxy_rejected_it(
    clock: MockClock, event_log: EventRecorder, subdomain: bool
) -> None:
    fake = FakeCoder(clock, templates=[template(subdomain=subdomain)], wildcard_access_url=WILDCARD)
    workspace_id = fake.create_workspace("dev", "docker")
    token = fake.issue_token()

    def revoke_then_call(request: object) -> ModelResponse:
        fake.revoke_token(token)  # after the tools were listed through a live session
        return ModelResponse(tool_calls=(call("mcp__search", json.dumps({"query": "primer"})),))

    model = ScriptedModel([revoke_then_call, ModelResponse(text="Signed out.")])
    with serve_fake_coder(fake) as coder:
        async with CoderClient(coder.url, token, clock=clock) as client:
            runtime = ChatRuntime(
                model, workspaces=CoderWorkspaces(CoderBackend(client)), clock=clock, on_event=event_log
            )
            async with clock.autojump(), runtime:
                result = await runtime.run_turn(
                    Chat(id="chat-1", owner="alice", workspace=WorkspaceBinding(workspace_id)), "search"
                )
    [answer] = [m.result for m in result.added if m.result is not None]
    assert LOGIN_REDIRECT in answer.text
    assert fake.mcp_tool_calls("dev") == 0
