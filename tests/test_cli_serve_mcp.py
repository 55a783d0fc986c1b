"""``chat-mcp-primer serve-mcp``: real MCP clients against the command, over stdio and Streamable HTTP, with a
FakeCoder on loopback behind it. Time is real (`SystemClock`) and the fake's timings tiny."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import REQUEST_TIMEOUT, CallToolResult, TextContent
from starlette.applications import Starlette

from chat_mcp_primer.cli import EXIT_FAILURE, EXIT_USAGE
from chat_mcp_primer.cli.serve_mcp import HttpEndpoint, WorkspaceLifecycle, build_server
from chat_mcp_primer.clock import SystemClock
from chat_mcp_primer.testing import (
    FakeAgent,
    FakeCoder,
    FakeMcpServer,
    FakeTemplate,
    FakeVersion,
    LoopbackServer,
    ServedFakeCoder,
    echo_tools,
)
from chat_mcp_primer.workspace.coder import CoderClient, ReadinessSettings

pytestmark = pytest.mark.anyio

MODULE = "chat_mcp_primer.cli.serve_mcp"
TOOL_NAMES = {
    "list_templates",
    "create_workspace",
    "start_workspace",
    "stop_workspace",
    "restart_workspace",
    "update_workspace",
    "workspace_status",
}
BEARER_TOKEN = "bearer-for-the-test"

# Tiny but non-zero timings: every state is passed through, and a whole create settles in a fraction of a second.
FAST_AGENT = FakeAgent(
    "main",
    connect_seconds=0.05,
    startup_seconds=0.05,
    mcp_servers=[FakeMcpServer(tools=echo_tools("search"), healthcheck=True)],
)
V1 = FakeVersion("v1", agents=[FAST_AGENT], queue_seconds=0.05, build_seconds=0.1, stop_seconds=0.05)
V2 = FakeVersion("v2", agents=[FAST_AGENT], queue_seconds=0.05, build_seconds=0.1, stop_seconds=0.05)
BROKEN = FakeVersion("broken", import_error="terraform init failed")
# A build that outlasts `CLIENT_READ_TIMEOUT_SECONDS`, so a client gives up on a call while Coder builds.
SLOW_BUILD_SECONDS = 3.0
SLOW = FakeVersion("slow", agents=[FAST_AGENT], queue_seconds=0.05, build_seconds=SLOW_BUILD_SECONDS)
DOCKER = FakeTemplate("docker", [V1, V2, BROKEN, SLOW], active_version="v1")
# Polls as fine as the fake's timings, so a tool answers soon after the workspace is ready.
POLL_INTERVAL_SECONDS = 0.05
FAST_READINESS = ReadinessSettings(
    build_poll_interval=POLL_INTERVAL_SECONDS,
    agent_probe_interval=POLL_INTERVAL_SECONDS,
    lifecycle_poll_interval=POLL_INTERVAL_SECONDS,
)
# Generous guards for a loaded CI machine: starting Python and importing the SDK takes about a second.
SESSION_GUARD_SECONDS = 60.0
EXIT_GUARD_SECONDS = 30.0
# Between attempts to reach a starting HTTP server.
CONNECT_RETRY_SECONDS = 0.05
# The SDK client's timeout for the call it gives up on: well inside `SLOW_BUILD_SECONDS`.
CLIENT_READ_TIMEOUT_SECONDS = 0.5
# Between looks at a workspace whose build the test waits out.
STATUS_POLL_SECONDS = 0.2


@pytest.fixture
def fake() -> FakeCoder:
    # SystemClock: the fake (a thread of this process) and the server (another process) share monotonic time.
    return FakeCoder(SystemClock(), templates=[DOCKER])


def server_env(coder: ServedFakeCoder) -> dict[str, str]:
    return {"CODER_URL": coder.url, "CODER_SESSION_TOKEN": coder.token}


def server_args(*extra: str) -> list[str]:
    return ["-m", MODULE, "--poll-interval", str(POLL_INTERVAL_SECONDS), *extra]


def decoded(result: CallToolResult) -> dict[str, Any]:
    """The tool's JSON object, checked to be the same as text and as structured content."""
    assert len(result.content) == 1
    block = result.content[0]
    assert isinstance(block, TextContent)
    payload: dict[str, Any] = json.loads(block.text)
    assert payload == result.structured_content
    assert result.is_error == ("error" in payload)
    return payload


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# -- stdio --------------------------------------------------------------------------------------------


@asynccontextmanager
async def stdio_session(coder: ServedFakeCoder, stderr_path: Path) -> AsyncIterator[Client]:
    """The command as a subprocess speaking MCP on its stdin and stdout; its stderr goes to ``stderr_path``."""
    parameters = StdioServerParameters(command=sys.executable, args=server_args(), env=server_env(coder))
    with stderr_path.open("w") as errlog:
        async with Client(stdio_client(parameters, errlog=errlog), cache=None) as client:
            yield client


async def test_stdio_server_creates_reports_and_stops_a_workspace(
    fake: FakeCoder, coder: ServedFakeCoder, tmp_path: Path
) -> None:
    stderr_path = tmp_path / "stderr.log"
    with anyio.fail_after(SESSION_GUARD_SECONDS):
        async with stdio_session(coder, stderr_path) as client:
            listing = await client.list_tools()
            templates = decoded(await client.call_tool("list_templates", {}))
            template_id = templates["templates"][0]["id"]
            created = decoded(await client.call_tool("create_workspace", {"template_id": template_id, "name": "dev"}))
            status = decoded(await client.call_tool("workspace_status", {"workspace": "DEV"}))
            stopped = decoded(await client.call_tool("stop_workspace", {"workspace": created_id(fake)}))
            unknown = await client.call_tool("start_workspace", {"workspace": "no-such-workspace"})

    assert {tool.name for tool in listing.tools} == TOOL_NAMES
    assert [template["name"] for template in templates["templates"]] == ["docker"]

    assert created["created"] is True
    assert created["workspace_name"] == "dev"
    assert created["build_id"] == fake.builds("dev")[0]["id"]
    assert not {"error", "agent_status", "startup_scripts"} & created.keys()  # the agent was ready

    assert status["workspace_name"] == "dev"
    assert status["status"] == "running"
    assert status["template_name"] == "docker"
    assert status["template_version_id"] == fake.version_id("docker", "v1")
    assert status["outdated"] is False
    [agent] = status["agents"]
    assert (agent["name"], agent["status"], agent["lifecycle_state"]) == ("main", "connected", "ready")
    assert [(app["slug"], app["server"]) for app in agent["mcp_apps"]] == [("mcp", "mcp")]
    assert agent["mcp_apps"][0]["health"] in {"initializing", "healthy"}

    assert stopped["stopped"] is True
    assert fake.workspace("dev")["latest_build"]["status"] == "stopped"

    assert unknown.is_error
    assert "No workspace named 'no-such-workspace'" in decoded(unknown)["error"]

    assert coder.token not in await anyio.Path(stderr_path).read_text()


def created_id(fake: FakeCoder) -> str:
    workspace_id: str = fake.workspace("dev")["id"]
    return workspace_id


# -- Streamable HTTP ------------------------------------------------------------------------------------


@asynccontextmanager
async def http_server(coder: ServedFakeCoder, port: int, stderr_path: Path, *extra: str) -> AsyncIterator[str]:
    """The command serving Streamable HTTP on 127.0.0.1:``port``; yields the MCP URL once it accepts connections,
    and terminates it afterwards."""
    env = {**os.environ, **server_env(coder)}
    with stderr_path.open("w") as errlog:
        process = await anyio.open_process(
            [sys.executable, *server_args("--http", f"127.0.0.1:{port}", *extra)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errlog,
        )
        try:
            with anyio.fail_after(SESSION_GUARD_SECONDS):
                while True:
                    if process.returncode is not None:
                        pytest.fail(f"server exited early: {await anyio.Path(stderr_path).read_text()}")
                    try:
                        connection = await anyio.connect_tcp("127.0.0.1", port)
                    except OSError:
                        await anyio.sleep(CONNECT_RETRY_SECONDS)
                        continue
                    await connection.aclose()
                    break
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            process.terminate()
            with anyio.fail_after(EXIT_GUARD_SECONDS):
                await process.wait()


def mcp_http_client(headers: dict[str, str]) -> httpx2.AsyncClient:
    # An explicit timeout: a bare httpx2 client cuts streamed responses after 5 s.
    return httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(SESSION_GUARD_SECONDS))


async def test_http_server_serves_the_tools_only_with_the_bearer_token(coder: ServedFakeCoder, tmp_path: Path) -> None:
    stderr_path = tmp_path / "stderr.log"
    port = free_loopback_port()
    async with http_server(coder, port, stderr_path, "--bearer-token", BEARER_TOKEN) as url:
        with anyio.fail_after(SESSION_GUARD_SECONDS):
            async with httpx.AsyncClient() as raw:
                without = await raw.post(url, json={})
                wrong = await raw.post(url, json={}, headers={"Authorization": "Bearer not-the-token"})
            with pytest.raises(Exception):  # noqa: B017, PT011 - the SDK wraps the 401 in (nested) groups
                async with Client(url, cache=None) as refused:
                    await refused.list_tools()
            headers = {"Authorization": f"Bearer {BEARER_TOKEN}"}
            async with (
                mcp_http_client(headers) as http,
                Client(streamable_http_client(url, http_client=http), cache=None) as client,
            ):
                listing = await client.list_tools()
                unknown = await client.call_tool("workspace_status", {"workspace": "nope"})

    assert (without.status_code, wrong.status_code) == (401, 401)
    serving = f"serve-mcp: serving MCP on {url} for alice at {coder.url.removeprefix('http://')} (Coder v"
    assert {tool.name for tool in listing.tools} == TOOL_NAMES
    assert "No workspace named 'nope'" in decoded(unknown)["error"]
    logs = await anyio.Path(stderr_path).read_text()
    assert serving in logs
    assert coder.token not in logs
    assert BEARER_TOKEN not in logs


async def test_http_progress_names_each_phase_of_a_start(
    fake: FakeCoder, coder: ServedFakeCoder, tmp_path: Path
) -> None:
    fake.create_workspace("dev", "docker", state="stopped")
    messages: list[str] = []

    async def heard(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    async with http_server(coder, free_loopback_port(), tmp_path / "stderr.log") as url:
        with anyio.fail_after(SESSION_GUARD_SECONDS):
            async with mcp_http_client({}) as http, Client(streamable_http_client(url, http_client=http)) as client:
                started = decoded(
                    await client.call_tool("start_workspace", {"workspace": "dev"}, progress_callback=heard)
                )

    assert started["started"] is True
    phases = [message.split(":", 1)[0] for message in messages]
    assert sorted(set(phases), key=phases.index) == ["build", "agent", "startup scripts"]
    assert any(started["build_id"] in message for message in messages)


async def test_http_call_the_client_gives_up_on_leaves_the_build_running(
    fake: FakeCoder, coder: ServedFakeCoder, tmp_path: Path
) -> None:
    fake.create_workspace("dev", "docker", version="slow", state="stopped")
    stderr_path = tmp_path / "stderr.log"
    async with http_server(coder, free_loopback_port(), stderr_path) as url:
        with anyio.fail_after(SESSION_GUARD_SECONDS):
            async with mcp_http_client({}) as http, Client(streamable_http_client(url, http_client=http)) as client:
                with pytest.raises(MCPError) as gave_up:
                    await client.call_tool(
                        "start_workspace", {"workspace": "dev"}, read_timeout_seconds=CLIENT_READ_TIMEOUT_SECONDS
                    )
                statuses = [decoded(await client.call_tool("workspace_status", {"workspace": "dev"}))["status"]]
                while statuses[-1] != "running":
                    await anyio.sleep(STATUS_POLL_SECONDS)
                    statuses.append(decoded(await client.call_tool("workspace_status", {"workspace": "dev"}))["status"])

    assert gave_up.value.error.code == REQUEST_TIMEOUT
    assert statuses[0] in {"pending", "starting"}  # the server stopped waiting; Coder did not
    start = fake.builds("dev")[-1]
    assert (start["transition"], start["status"]) == ("start", "running")
    logs = await anyio.Path(stderr_path).read_text()
    [cancelled] = [line for line in logs.splitlines() if "serve_mcp.call_cancelled" in line]
    assert start["id"] in cancelled
    assert "the build continues in Coder" in cancelled
    assert "Traceback" not in logs
    assert coder.token not in logs


# -- refusals ----------------------------------------------------------------------------------------------


def run_command(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", MODULE, *args],
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=EXIT_GUARD_SECONDS,
        check=False,
    )


def test_http_beyond_loopback_without_bearer_token_is_refused(coder: ServedFakeCoder) -> None:
    environment = {**server_env(coder), "CHAT_MCP_PRIMER_BEARER_TOKEN": ""}
    finished = run_command("--http", f"0.0.0.0:{free_loopback_port()}", env=environment)
    assert finished.returncode == EXIT_USAGE
    assert "bearer token" in finished.stderr
    assert "not a loopback address" in finished.stderr
    assert coder.token not in finished.stderr + finished.stdout


def test_a_port_that_is_taken_is_reported_before_anything_says_serving(coder: ServedFakeCoder) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        finished = run_command("--http", f"127.0.0.1:{port}", env=server_env(coder))

    assert finished.returncode == EXIT_FAILURE
    assert finished.stderr == f"serve-mcp: cannot listen on 127.0.0.1:{port}: address already in use\n"


def test_an_unreachable_deployment_is_refused_with_its_host_and_the_cause() -> None:
    port = free_loopback_port()

    finished = run_command(env={"CODER_URL": f"http://127.0.0.1:{port}", "CODER_SESSION_TOKEN": "t0ken"})

    assert finished.returncode == EXIT_FAILURE
    assert finished.stderr == (f"serve-mcp: cannot reach 127.0.0.1:{port}: connection refused (GET /buildinfo)\n")


def test_a_server_that_is_not_coder_is_refused() -> None:
    with LoopbackServer(Starlette) as other:
        finished = run_command(env={"CODER_URL": other.base_url, "CODER_SESSION_TOKEN": "t0ken"})

    assert finished.returncode == EXIT_FAILURE
    assert finished.stderr == (
        f"serve-mcp: 127.0.0.1:{other.port} is not a Coder deployment (GET /api/v2/buildinfo answered HTTP 404)\n"
    )


def test_a_rejected_token_is_refused_before_serving(fake: FakeCoder, coder: ServedFakeCoder) -> None:
    token = fake.issue_token()
    fake.revoke_token(token)

    finished = run_command(
        "--http", f"127.0.0.1:{free_loopback_port()}", env={**server_env(coder), "CODER_SESSION_TOKEN": token}
    )

    assert finished.returncode == EXIT_FAILURE
    authority = coder.url.removeprefix("http://")
    assert finished.stderr == f"serve-mcp: {authority} rejected the session token (HTTP 401)\n"
    assert token not in finished.stdout


# -- in process: the rest of the lifecycle, without a subprocess -------------------------------------------


@asynccontextmanager
async def in_process(coder: ServedFakeCoder) -> AsyncIterator[Client]:
    async with CoderClient(coder.url, coder.token) as coder_client:
        server = build_server(WorkspaceLifecycle(coder_client, FAST_READINESS))
        async with Client(server, cache=None) as client:
            yield client


async def test_restart_and_update_keep_the_chat_tools_result_keys(fake: FakeCoder, coder: ServedFakeCoder) -> None:
    fake.create_workspace("dev", "docker", state="running")
    v2 = fake.version_id("docker", "v2")
    with anyio.fail_after(SESSION_GUARD_SECONDS):
        async with in_process(coder) as client:
            restarted = decoded(await client.call_tool("restart_workspace", {"workspace": "dev"}))
            updated = decoded(
                await client.call_tool("update_workspace", {"workspace": "Dev", "template_version_id": v2})
            )
            refused = decoded(
                await client.call_tool(
                    "update_workspace",
                    {"workspace": "dev", "template_version_id": fake.version_id("docker", "broken")},
                )
            )

    assert restarted["restarted"] is True
    assert restarted["workspace_name"] == "dev"
    assert updated["updated"] is True
    assert updated["template_version_id"] == v2
    assert fake.workspace("dev")["latest_build"]["template_version_id"] == v2
    assert fake.workspace("dev")["latest_build"]["status"] == "running"
    assert refused["updated"] is False
    assert "failed to import" in refused["error"]


async def test_creating_a_taken_name_is_an_error_result(fake: FakeCoder, coder: ServedFakeCoder) -> None:
    fake.create_workspace("dev", "docker", state="stopped")
    with anyio.fail_after(SESSION_GUARD_SECONDS):
        async with in_process(coder) as client:
            result = await client.call_tool(
                "create_workspace", {"template_id": fake.template_id("docker"), "name": "dev"}
            )
            started = decoded(await client.call_tool("start_workspace", {"workspace": "dev"}))

    assert result.is_error
    assert "already exists" in decoded(result)["error"]
    assert started["started"] is True
    assert started["workspace_name"] == "dev"


@pytest.mark.parametrize(
    ("text", "host", "port", "loopback"),
    [
        ("127.0.0.1:8000", "127.0.0.1", 8000, True),
        ("localhost:80", "localhost", 80, True),
        ("[::1]:9000", "::1", 9000, True),
        ("0.0.0.0:8000", "0.0.0.0", 8000, False),
        ("mcp.example.com:443", "mcp.example.com", 443, False),
    ],
)
def test_http_endpoint_parses_host_and_port(text: str, host: str, port: int, loopback: bool) -> None:
    endpoint = HttpEndpoint.parse(text)
    assert (endpoint.host, endpoint.port, endpoint.is_loopback) == (host, port, loopback)


@pytest.mark.parametrize("text", ["8000", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", ":8000", "host:http"])
def test_http_endpoint_rejects_malformed_addresses(text: str) -> None:
    with pytest.raises(ValueError, match="--http"):
        HttpEndpoint.parse(text)
