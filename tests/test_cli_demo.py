"""The demo end to end, as a newcomer runs it: a subprocess on the embedded Coder simulator, real time."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping

import pytest

from chat_mcp_primer.cli._demo_run import DemoSummary
from chat_mcp_primer.cli._demo_simulator import DEMO_TEMPLATE
from chat_mcp_primer.clock import SystemClock
from chat_mcp_primer.model import ToolCall
from chat_mcp_primer.testing import (
    FakeAgent,
    FakeAnthropic,
    FakeAnthropicMessage,
    FakeCoder,
    FakeMcpServer,
    FakeOpenAI,
    FakeOpenAIAnswer,
    FakeOpenAIFailure,
    FakeTemplate,
    FakeVersion,
    ServedFakeCoder,
    anthropic_tool_use_block,
    echo_tools,
    free_port,
)

# Guards against a hung demo only; the demo itself takes a few seconds of real time.
DEMO_GUARD_S = 120


def run_demo(*arguments: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chat_mcp_primer", "demo", "--json", *arguments],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=DEMO_GUARD_S,
        check=False,
        env=None if env is None else dict(env),
    )


def test_demo_offers_the_workspace_tools_after_the_server_is_ready() -> None:
    finished = run_demo("--cold-start", "0.5")
    assert finished.returncode == 0, finished.stderr
    summary = json.loads(finished.stdout)
    assert summary["ok"] is True
    assert summary["server_ready_s"] is not None
    assert summary["tools_offered_s"] >= summary["server_ready_s"]
    assert summary["delay_s"] == summary["tools_offered_s"] - summary["server_ready_s"]
    assert summary["primer_attempts"] >= 1
    assert 1 <= summary["first_step_with_workspace_tools"] < summary["steps"]
    assert "primer" in summary["message"]  # the model used the workspace tool and read its answer
    assert "create_workspace returned" in finished.stderr  # the timeline went to stderr, JSON to stdout


def test_demo_with_a_server_that_never_comes_up_fails_with_a_clear_message() -> None:
    finished = run_demo("--no-server", "--max-wait", "1", "--patience", "1")
    assert finished.returncode == 1
    summary = json.loads(finished.stdout)
    assert summary["ok"] is False
    assert summary["first_step_with_workspace_tools"] is None
    assert "never appeared" in finished.stderr


# -- where the demo runs ------------------------------------------------------------------------------------

# Tiny timings, so a whole demo on the fake deployment takes a few seconds of real time.
QUICK_AGENT = FakeAgent(
    "main",
    connect_seconds=0.05,
    startup_seconds=0.05,
    mcp_servers=[FakeMcpServer(tools=echo_tools("search"), cold_start_seconds=0.2)],
)
QUICK_DEMO_TEMPLATE = FakeTemplate(
    DEMO_TEMPLATE, [FakeVersion("v1", agents=[QUICK_AGENT], queue_seconds=0.05, build_seconds=0.1, stop_seconds=0.05)]
)


@pytest.fixture
def fake() -> FakeCoder:
    # SystemClock: the fake (a thread of this process) and the demo (another process) share monotonic time.
    return FakeCoder(SystemClock(), templates=[QUICK_DEMO_TEMPLATE])


# The variables the demo's commands may read; each test sets its own.
FOREIGN_VARIABLES = (
    "CODER_URL",
    "CODER_SESSION_TOKEN",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
)


def demo_env(**variables: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if k not in FOREIGN_VARIABLES}
    return {**clean, **variables}


def test_demo_uses_the_simulator_even_with_coder_url_set_in_the_environment(
    fake: FakeCoder, coder: ServedFakeCoder
) -> None:
    finished = run_demo("--cold-start", "0", env=demo_env(CODER_URL=coder.url, CODER_SESSION_TOKEN=coder.token))

    assert finished.returncode == 0, finished.stderr
    assert json.loads(finished.stdout)["ok"] is True
    assert "Coder simulator on http://127.0.0.1:" in finished.stderr
    assert fake.requests == {}  # the deployment in the environment was never touched


def test_demo_on_a_deployment_given_by_coder_url_uses_its_tools_and_deletes_its_workspace(
    fake: FakeCoder, coder: ServedFakeCoder
) -> None:
    first = run_demo("--coder-url", coder.url, env=demo_env(CODER_SESSION_TOKEN=coder.token))
    second = run_demo("--coder-url", coder.url, "--token", coder.token, "--keep", env=demo_env())

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    summary, kept = json.loads(first.stdout), json.loads(second.stdout)
    assert summary["ok"] is True
    assert summary["message"] == "The workspace offers these tools: mcp__search."  # not the simulator's tools
    assert summary["cold_start_s"] is None
    assert summary["workspace_name"].startswith("demo-")
    assert kept["workspace_name"].startswith("demo-")
    assert summary["workspace_name"] != kept["workspace_name"]  # each demo makes a workspace of its own
    deleted = fake.workspace(summary["workspace_name"])["latest_build"]
    assert (deleted["transition"], deleted["status"]) == ("delete", "deleted")
    assert f"workspace {summary['workspace_name']} deleted" in first.stderr
    running = fake.workspace(kept["workspace_name"])["latest_build"]
    assert (running["transition"], running["status"]) == ("start", "running")
    assert coder.token not in first.stderr + first.stdout + second.stderr + second.stdout


def test_demo_on_an_unreachable_deployment_names_the_host_and_the_cause() -> None:
    port = free_port()

    finished = run_demo("--coder-url", f"http://127.0.0.1:{port}", "--token", "t0ken", env=demo_env())

    assert finished.returncode == 1
    assert f"demo failed: cannot reach 127.0.0.1:{port}: connection refused" in finished.stderr
    assert "Traceback" not in finished.stderr
    assert finished.stdout == ""


def test_demo_reports_its_mcp_server_process_exiting_instead_of_waiting_for_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        finished = run_demo("--cold-start", "0", "--server-port", str(port), env=demo_env())

    assert finished.returncode == 1
    assert (
        f"demo failed: the workspace's MCP server process (port {port}) exited with status 1 before it was ready: "
        f"cannot listen on 127.0.0.1:{port}: address already in use"
    ) in finished.stderr
    assert "never appeared" not in finished.stderr  # it did not wait out the primer's budget
    assert "Traceback" not in finished.stderr


def test_the_json_summary_is_strict_json_even_when_a_number_is_not_finite() -> None:
    summary = DemoSummary(
        ok=True,
        strategy="primed",
        message="done",
        cold_start_s=math.inf,
        server_ready_s=math.nan,
        tools_offered_s=-math.inf,
        delay_s=0.25,
        primer_attempts=1,
        first_step_with_workspace_tools=1,
        steps=3,
        workspace_name="demo-123abc",
    )

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in the JSON summary")

    decoded = json.loads(summary.to_json(), parse_constant=refuse)
    assert (decoded["cold_start_s"], decoded["server_ready_s"], decoded["tools_offered_s"]) == (None, None, None)
    assert decoded["delay_s"] == 0.25


# -- with a real model ---------------------------------------------------------------------------------------

OPENAI_KEY = "sk-test-not-a-real-key"
ANTHROPIC_KEY = "sk-ant-test-not-a-real-key"
SEARCH_ARGUMENTS = {"q": "how does the primer work"}


@pytest.fixture
def openai_api() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as served:
        yield served


@pytest.fixture
def anthropic_api() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as served:
        yield served


def create_arguments(fake: FakeCoder) -> dict[str, str]:
    # The name the model chooses; the demo asks for its own, which a scripted provider cannot know.
    return {"template_id": fake.template_id(DEMO_TEMPLATE), "name": "dev"}


def offered_tools(tools: list[dict[str, object]]) -> set[str]:
    """The tool names of one request, in either provider's shape."""
    names = set()
    for tool in tools:
        function = tool.get("function", tool)
        assert isinstance(function, dict)
        names.add(str(function["name"]))
    return names


def test_demo_with_an_openai_model_holds_the_conversation_through_the_adapter(
    fake: FakeCoder, coder: ServedFakeCoder, openai_api: FakeOpenAI
) -> None:
    openai_api.reply(
        FakeOpenAIAnswer(tool_calls=(ToolCall("call_1", "create_workspace", json.dumps(create_arguments(fake))),)),
        FakeOpenAIAnswer(tool_calls=(ToolCall("call_2", "mcp__search", json.dumps(SEARCH_ARGUMENTS)),)),
        FakeOpenAIAnswer(text="The primer keeps looking for the workspace's tools."),
    )
    env = demo_env(CODER_SESSION_TOKEN=coder.token, OPENAI_API_KEY=OPENAI_KEY, OPENAI_BASE_URL=openai_api.base_url)

    finished = run_demo("--coder-url", coder.url, "--model", "openai:gpt-test", env=env)

    assert finished.returncode == 0, finished.stderr
    summary = json.loads(finished.stdout)
    assert summary["ok"] is True
    assert summary["model"] == "openai:gpt-test"
    assert summary["message"] == "The primer keeps looking for the workspace's tools."
    assert summary["first_step_with_workspace_tools"] == 1
    asked = [seen.body for seen in openai_api.requests]
    assert len(asked) == 3
    assert {"create_workspace", "take_notes"} <= offered_tools(asked[0]["tools"])
    assert "mcp__search" not in offered_tools(asked[0]["tools"])
    assert "mcp__search" in offered_tools(asked[1]["tools"])  # the workspace's tools, offered to the model
    assert summary["workspace_name"] in asked[0]["messages"][0]["content"]  # the model was told the demo's part
    assert fake.mcp_tool_calls("dev") == 1
    assert OPENAI_KEY not in finished.stderr + finished.stdout


def test_demo_with_an_anthropic_model_holds_the_conversation_through_the_adapter(
    fake: FakeCoder, coder: ServedFakeCoder, anthropic_api: FakeAnthropic
) -> None:
    anthropic_api.reply(
        FakeAnthropicMessage(
            (anthropic_tool_use_block("toolu_1", "create_workspace", create_arguments(fake)),), stop_reason="tool_use"
        ),
        FakeAnthropicMessage(
            (anthropic_tool_use_block("toolu_2", "mcp__search", SEARCH_ARGUMENTS),), stop_reason="tool_use"
        ),
        FakeAnthropicMessage.text("The primer keeps looking for the workspace's tools."),
    )
    env = demo_env(
        CODER_SESSION_TOKEN=coder.token, ANTHROPIC_API_KEY=ANTHROPIC_KEY, ANTHROPIC_BASE_URL=anthropic_api.base_url
    )

    finished = run_demo("--coder-url", coder.url, "--model", "anthropic:claude-test", env=env)

    assert finished.returncode == 0, finished.stderr
    summary = json.loads(finished.stdout)
    assert (summary["ok"], summary["model"]) == (True, "anthropic:claude-test")
    assert summary["message"] == "The primer keeps looking for the workspace's tools."
    asked = [seen.body for seen in anthropic_api.requests]
    assert len(asked) == 3
    assert "mcp__search" not in offered_tools(asked[0]["tools"])
    assert "mcp__search" in offered_tools(asked[1]["tools"])
    assert fake.mcp_tool_calls("dev") == 1
    assert ANTHROPIC_KEY not in finished.stderr + finished.stdout


def test_demo_with_a_model_that_fails_ends_with_the_providers_reason_in_one_line(
    coder: ServedFakeCoder, openai_api: FakeOpenAI
) -> None:
    openai_api.reply(FakeOpenAIFailure(401, "Incorrect API key provided.", code="invalid_api_key"))
    env = demo_env(CODER_SESSION_TOKEN=coder.token, OPENAI_API_KEY=OPENAI_KEY, OPENAI_BASE_URL=openai_api.base_url)

    finished = run_demo("--coder-url", coder.url, "--model", "openai:gpt-test", env=env)

    assert finished.returncode == 1
    failures = [line for line in finished.stderr.splitlines() if line.startswith("demo failed:")]
    assert failures == ["demo failed: openai (401): Incorrect API key provided."]
    assert "Traceback" not in finished.stderr
    assert finished.stdout == ""
