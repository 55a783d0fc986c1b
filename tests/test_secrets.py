"""The Coder session token never appears in anything a faulty turn produces: events, logs, tool results,
exception text or reprs; nor in anything a failing CLI run prints."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import traceback
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from chat_mcp_primer import Chat, ChatRuntime, ModelResponse
from chat_mcp_primer.testing import (
    EventRecorder,
    FakeAgent,
    FakeCoder,
    FakeMcpServer,
    FakeTemplate,
    FakeVersion,
    MockClock,
    ScriptedModel,
    ServedFakeCoder,
    call,
    echo_tools,
)
from chat_mcp_primer.tools import CoderWorkspaces
from chat_mcp_primer.workspace.coder import TOKEN_COOKIE, TOKEN_HEADER, CoderBackend, CoderClient, CoderError, Workspace
from chat_mcp_primer.workspace_mcp import CacheKey, SessionSettings
from chat_mcp_primer.workspace_mcp._sessions import McpSessions

pytestmark = pytest.mark.anyio

# Guards against a hang in real time only.
GUARD_S = 30
SUBPROCESS_GUARD_S = 60


@pytest.fixture
def fake(clock: MockClock) -> FakeCoder:
    server = FakeMcpServer(tools=echo_tools("search"), cold_start_seconds=3)
    return FakeCoder(
        clock, templates=[FakeTemplate("docker", [FakeVersion("v1", agents=[FakeAgent(mcp_servers=[server])])])]
    )


def coder_runtime(
    client: CoderClient, model: ScriptedModel, clock: MockClock, event_log: EventRecorder
) -> tuple[CoderBackend, ChatRuntime]:
    """A runtime whose chats provision workspaces on the deployment ``client`` signs in to."""
    backend = CoderBackend(client)
    return backend, ChatRuntime(
        model,
        workspaces=CoderWorkspaces(backend),
        clock=clock,
        on_event=event_log,
    )


async def test_a_turn_whose_token_is_revoked_midway_leaks_it_nowhere(
    clock: MockClock,
    fake: FakeCoder,
    coder: ServedFakeCoder,
    event_log: EventRecorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = coder.token
    create = call("create_workspace", json.dumps({"template_id": fake.template_id("docker"), "name": "dev"}))

    def revoke_then_search(request: object) -> ModelResponse:
        fake.revoke_token()  # the deployment revokes the session mid-turn
        return ModelResponse(tool_calls=(call("mcp__search", "{}"), call("start_workspace")))

    model = ScriptedModel([ModelResponse(tool_calls=(create,)), revoke_then_search, ModelResponse(text="done")])
    caplog.set_level(logging.DEBUG)
    async with CoderClient(coder.url, token, clock=clock) as client:
        _, runtime = coder_runtime(client, model, clock, event_log)
        with anyio.fail_after(GUARD_S):
            async with clock.autojump(), runtime:
                result = await runtime.run_turn(Chat(id="chat-1", owner="alice"), "set up and search")
        client_repr = repr(client)

    produced = [
        *(repr(event) for event in event_log.events),
        *(record.getMessage() for record in caplog.records),
        *(json.dumps(message.to_dict()) for message in result.added),
        client_repr,
    ]
    tool_texts = [message.result.text for message in result.added if message.result is not None]
    assert any("signed out" in text for text in tool_texts)  # the revocation reached the model clearly
    assert all(token not in text for text in produced)


def leaks(token: str, texts: list[str]) -> list[int]:
    """Which of ``texts`` carry the token, as a bare value or as a header line (never the text itself, so a
    failing assertion does not print the secret)."""
    needles = (token, f"{TOKEN_HEADER}: {token}", f"Bearer {token}")
    return [index for index, text in enumerate(texts) if any(needle in text for needle in needles)]


def everything_logged(records: list[logging.LogRecord]) -> list[str]:
    """Every log record of every logger (ours, the SDK's, httpx's), formatted with its traceback."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return [formatter.format(record) + repr(record.__dict__) for record in records]


def exception_texts(exc: BaseException) -> list[str]:
    return [str(exc), repr(exc), "".join(traceback.format_exception(exc))]


async def test_everything_a_faulty_turn_produces_is_free_of_the_token(
    clock: MockClock,
    fake: FakeCoder,
    coder: ServedFakeCoder,
    event_log: EventRecorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The token is revoked while the workspace MCP server is in use: REST calls, the app proxy and the MCP
    session all fail. Every logger at debug level, every event, every tool result, the reprs of the objects
    that hold the token, and the text, repr and traceback of the errors the caller sees are searched."""
    token = fake.issue_token()
    create = call("create_workspace", json.dumps({"template_id": fake.template_id("docker"), "name": "dev"}))

    def revoke_then_use(request: object) -> ModelResponse:
        fake.revoke_token(token)
        calls = (call("mcp__search", '{"q": "x"}'), call("stop_workspace"), call("create_workspace", "[1, 2]"))
        return ModelResponse(tool_calls=calls)

    model = ScriptedModel([ModelResponse(tool_calls=(create,)), revoke_then_use, ModelResponse(text="done")])
    caplog.set_level(logging.DEBUG)  # the root logger: every library's records, not only ours
    errors: list[BaseException] = []
    async with CoderClient(coder.url, token, clock=clock) as client:
        backend, runtime = coder_runtime(client, model, clock, event_log)
        with anyio.fail_after(GUARD_S):
            async with clock.autojump(), runtime:
                result = await runtime.run_turn(Chat(id="chat-1", owner="alice"), "set up and search")
            assert result.chat.workspace is not None
            for failing in (client.me(), backend.current_agent(result.chat.workspace)):
                try:
                    await failing
                except CoderError as exc:
                    errors.append(exc)
            # The workspace's MCP endpoint, carrying the revoked token, dialled directly.
            workspace = await _workspace_as_admin(coder, result.chat.workspace.workspace_id)
            [agent] = workspace.latest_build.agents
            [endpoint] = backend.endpoints(workspace, agent)
            async with clock.autojump(), McpSessions(clock, SessionSettings(), runtime.events) as sessions:
                try:
                    await sessions.session(CacheKey(workspace.id, agent.id, endpoint.server), endpoint)
                except Exception as exc:
                    errors.append(exc)
        reprs = [repr(client), repr(backend), repr(endpoint), repr(agent), repr(result), repr(runtime)]

    produced = [
        *(repr(event) for event in event_log.events),
        *everything_logged(caplog.records),
        *(json.dumps(message.to_dict()) for message in result.added),
        json.dumps(result.chat.to_dict()),
        *reprs,
        *(text for error in errors for text in exception_texts(error)),
    ]
    tool_texts = [message.result.text for message in result.added if message.result is not None]
    assert any("signed out" in text for text in tool_texts)  # the revocation reached the model clearly
    assert any("arguments must be a JSON object" in text for text in tool_texts)
    assert len(errors) == 3  # the REST calls and the MCP dial all failed, and were looked at
    # The endpoint does carry the token (as the app proxy's cookie): its repr must hide it.
    assert f"{TOKEN_COOKIE}={token}" in endpoint.headers["Cookie"]
    assert leaks(token, produced) == []


async def _workspace_as_admin(coder: ServedFakeCoder, workspace_id: str) -> Workspace:
    async with CoderClient(coder.url, coder.token) as admin:
        return await admin.workspace(workspace_id)


def test_a_failing_update_workspace_run_prints_no_token(fake: FakeCoder, coder: ServedFakeCoder) -> None:
    """A revoked token, debug logging, the token both in the environment and on the command line."""
    token = fake.issue_token()
    fake.revoke_token(token)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CODER_")}
    failing_options = ["--coder-url", coder.url, "--token", token, "--log-level", "debug", "--json"]
    finished = subprocess.run(
        [sys.executable, "-m", "chat_mcp_primer", "update-workspace", "--workspace-name", "dev", *failing_options],
        env={**environment, "CODER_SESSION_TOKEN": token},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_GUARD_S,
        check=False,
    )
    assert finished.returncode == 1
    assert "rejected" in finished.stdout + finished.stderr
    assert leaks(token, [finished.stdout, finished.stderr]) == []


async def test_a_serve_mcp_run_with_a_revoked_token_prints_and_answers_no_token(
    fake: FakeCoder, coder: ServedFakeCoder, tmp_path: Path
) -> None:
    """The token is revoked once the server is up (it checks the token when it starts), so the tools fail:
    their results and the server's debug log are searched."""
    token = fake.issue_token()
    parameters = StdioServerParameters(
        command=sys.executable,
        args=["-m", "chat_mcp_primer", "serve-mcp", "--log-level", "debug"],
        env={"CODER_URL": coder.url, "CODER_SESSION_TOKEN": token, "PATH": os.environ.get("PATH", "")},
    )
    stderr_path = tmp_path / "stderr.log"
    with anyio.fail_after(SUBPROCESS_GUARD_S), stderr_path.open("w") as errlog:
        async with Client(stdio_client(parameters, errlog=errlog), cache=None) as client:
            fake.revoke_token(token)
            results = [
                await client.call_tool("list_templates", {}),
                await client.call_tool("workspace_status", {"workspace": "dev"}),
            ]
    answers = [block.model_dump_json() for result in results for block in result.content]
    assert all(result.is_error for result in results)
    assert leaks(token, [*answers, stderr_path.read_text()]) == []
