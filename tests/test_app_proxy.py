"""Coder's path-based app proxy as Coder answers it, and what reaches the server behind it.

A real MCP server (`WorkspaceMCPServer`, which records every request it receives) runs behind FakeCoder's
app proxy over loopback; the real runtime, `CoderBackend`, `httpx2` and `mcp` clients drive whole turns.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from chat_mcp_primer import Chat, ChatRuntime, ModelResponse, WorkspaceBinding
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
    call,
    echo_tools,
)
from chat_mcp_primer.tools import CoderWorkspaces
from chat_mcp_primer.workspace.coder import TOKEN_COOKIE, TOKEN_HEADER, CoderBackend, CoderClient

pytestmark = pytest.mark.anyio

# A JSON-RPC request any MCP server answers (or refuses) without a session: enough for the proxy to forward.
PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the workspace server and FakeCoder serve on uvicorn threads; one backend is enough


@pytest.fixture
def workspace_server() -> Iterator[WorkspaceMCPServer]:
    with WorkspaceMCPServer(echo_tools("search"), name="behind-the-proxy") as server:
        yield server


@pytest.fixture
def fake(clock: MockClock, workspace_server: WorkspaceMCPServer) -> FakeCoder:
    upstream = workspace_server.url.removesuffix("/mcp")
    server = FakeMcpServer(cold_start_seconds=0.0, upstream=upstream)
    return FakeCoder(
        clock, templates=[FakeTemplate("docker", [FakeVersion("v1", agents=[FakeAgent(mcp_servers=[server])])])]
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


async def test_a_token_sent_as_a_header_would_reach_the_server_as_real_coder_forwards_it(
    coder: ServedFakeCoder, workspace_server: WorkspaceMCPServer
) -> None:
    """The recorder sees forwarded headers: the old way (the token as a header) leaks, the cookie does not."""
    url = coder.mcp_url("dev")
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
    coder: ServedFakeCoder, workspace_server: WorkspaceMCPServer
) -> None:
    coder.fake.create_workspace("dev", "docker", state="running")
    cookies = (
        f"theme=dark; {TOKEN_COOKIE}={coder.token}; coder_signed_app_token=signed; "
        "coder_path_app_session_token=app; oauth_state=state; app_session=kept"
    )
    async with httpx.AsyncClient(headers=MCP_HEADERS) as http:
        await http.post(coder.mcp_url("dev") + "?page=2", json=PING, headers={"Cookie": cookies, "X-Trace": "abc"})
    [request] = workspace_server.seen
    headers = dict(request.headers)
    assert headers["cookie"] == "theme=dark; app_session=kept"
    assert headers["x-trace"] == "abc"
    assert request.query_string == "page=2"
    assert request.path == "/mcp"
