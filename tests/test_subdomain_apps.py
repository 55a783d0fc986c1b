"""Subdomain apps: where `CoderBackend` reaches an MCP app that is served on a host of its own, what the
deployment says its wildcard is, and what happens without one. Over loopback against `FakeCoder`, whose
wildcard hosts the served fake resolves to loopback with no DNS (`loopback_hosts`)."""

from __future__ import annotations

import anyio
import httpx
import pytest

from chat_mcp_primer import WorkspaceBinding
from chat_mcp_primer.events import Events
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
    serve_fake_coder,
)
from chat_mcp_primer.workspace import AgentMcp
from chat_mcp_primer.workspace.coder import CoderBackend, CoderClient
from chat_mcp_primer.workspace_mcp import ListingLimits, MemoryToolCache, Outcome, SessionSettings
from chat_mcp_primer.workspace_mcp._discovery import Discovery, DiscoveryResult
from chat_mcp_primer.workspace_mcp._sessions import McpSessions

pytestmark = pytest.mark.anyio

WILDCARD = "*.apps.coder.test"
HOST_ROUTE = "GET /api/v2/applications/host"
# Guards against hangs in real time (the servers answer from other threads); never an assertion about speed.
GUARD_S = 10


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # FakeCoder serves on a uvicorn thread; the client side is the same on both backends


def fake_with(clock: MockClock, *servers: FakeMcpServer, **options: object) -> FakeCoder:
    version = FakeVersion("v1", agents=[FakeAgent(mcp_servers=list(servers))])
    return FakeCoder(clock, templates=[FakeTemplate("docker", [version])], **options)  # type: ignore[arg-type]


def subdomain_server(slug: str = "mcp") -> FakeMcpServer:
    return FakeMcpServer(slug=slug, tools=echo_tools("search"), cold_start_seconds=0.0, subdomain=True)


async def current_agent(coder: ServedFakeCoder, clock: MockClock, workspace_id: str) -> tuple[AgentMcp, CoderBackend]:
    async with CoderClient(coder.url, coder.token, clock=clock) as client:
        backend = CoderBackend(client)
        agent = await backend.current_agent(WorkspaceBinding(workspace_id))
        assert agent is not None
        return agent, backend


async def discover(clock: MockClock, agent: AgentMcp) -> DiscoveryResult:
    events = Events(clock.now, EventRecorder())
    async with McpSessions(clock, SessionSettings(), events) as sessions:
        discovery = Discovery(sessions, MemoryToolCache(), clock, ListingLimits(), events)
        with anyio.fail_after(GUARD_S):
            return await discovery.attempt(agent)


async def test_the_deployment_names_its_wildcard_with_the_access_urls_port(clock: MockClock) -> None:
    with serve_fake_coder(fake_with(clock, wildcard_access_url=WILDCARD)) as coder:
        async with CoderClient(coder.url, coder.token, clock=clock) as client:
            host = await client.applications_host()
    assert host == f"*.apps.coder.test:{httpx.URL(coder.url).port}"
    with serve_fake_coder(fake_with(clock)) as coder:
        async with CoderClient(coder.url, coder.token, clock=clock) as client:
            assert await client.applications_host() == ""  # Coder's default: no wildcard


async def test_a_subdomain_app_is_reached_at_its_own_host_and_the_wildcard_is_asked_for_once(clock: MockClock) -> None:
    fake = fake_with(
        clock,
        subdomain_server(),
        FakeMcpServer(slug="docs-mcp", tools=echo_tools("read"), cold_start_seconds=0.0),
        wildcard_access_url=WILDCARD,
    )
    workspace_id = fake.create_workspace("dev", "docker", state="running")
    with serve_fake_coder(fake) as coder:
        async with CoderClient(coder.url, coder.token, clock=clock) as client:
            backend = CoderBackend(client)
            for _ in range(3):
                agent = await backend.current_agent(WorkspaceBinding(workspace_id))
        assert agent is not None
        port = httpx.URL(coder.url).port
        by_server = {endpoint.server: endpoint for endpoint in agent.endpoints}
        assert by_server["mcp"].url == f"http://mcp--main--dev--alice.apps.coder.test:{port}/mcp"
        # Bound to the app's own origin: the token goes to that host and nowhere else.
        assert by_server["mcp"].origin == f"http://mcp--main--dev--alice.apps.coder.test:{port}"
        assert by_server["docs"].url == f"{coder.url}/@alice/dev.main/apps/docs-mcp/mcp"  # a path app beside it
        assert fake.request_count(HOST_ROUTE) == 1  # the deployment's wildcard does not change while it runs
        result = await discover(clock, agent)
    assert result.outcome is Outcome.OK
    assert sorted(tool.name for tool in result.tools) == ["read", "search"]
    assert fake.mcp_list_calls("dev") == 1


async def test_without_subdomain_apps_the_wildcard_is_never_asked_for(clock: MockClock) -> None:
    path_app = FakeMcpServer(tools=echo_tools("search"), cold_start_seconds=0.0)
    fake = fake_with(clock, path_app, wildcard_access_url=WILDCARD)
    workspace_id = fake.create_workspace("dev", "docker", state="running")
    with serve_fake_coder(fake) as coder:
        agent, _ = await current_agent(coder, clock, workspace_id)
    assert [endpoint.url for endpoint in agent.endpoints] == [f"{coder.url}/@alice/dev.main/apps/mcp/mcp"]
    assert fake.request_count(HOST_ROUTE) == 0


async def test_a_subdomain_app_on_a_deployment_without_a_wildcard_is_reached_at_its_path(clock: MockClock) -> None:
    """Coder's proxy serves every app at its path, subdomain apps included: that is the only way in then."""
    fake = fake_with(clock, subdomain_server())
    workspace_id = fake.create_workspace("dev", "docker", state="running")
    with serve_fake_coder(fake) as coder:
        agent, _ = await current_agent(coder, clock, workspace_id)
        assert [endpoint.url for endpoint in agent.endpoints] == [f"{coder.url}/@alice/dev.main/apps/mcp/mcp"]
        result = await discover(clock, agent)
    assert result.outcome is Outcome.OK
    assert [tool.name for tool in result.tools] == ["search"]


async def test_with_neither_a_wildcard_nor_path_apps_the_reason_says_what_the_deployment_lacks(
    clock: MockClock,
) -> None:
    fake = fake_with(clock, subdomain_server(), disable_path_apps=True)
    workspace_id = fake.create_workspace("dev", "docker", state="running")
    with serve_fake_coder(fake) as coder:
        agent, _ = await current_agent(coder, clock, workspace_id)
        result = await discover(clock, agent)
    assert result.outcome is Outcome.ERROR
    assert dict(result.failures) == {
        "mcp": "the app proxy refused the request (403): path-based apps are disabled on this deployment; "
        "serve the MCP app as a subdomain app (subdomain = true)"
    }
    assert result.futile
