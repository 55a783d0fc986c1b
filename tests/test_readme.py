"""Every Python example in the README runs, exactly as printed."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from chat_mcp_primer import Chat, ModelResponse, WorkspaceBinding
from chat_mcp_primer.clock import SystemClock
from chat_mcp_primer.testing import (
    FakeAgent,
    FakeAnthropic,
    FakeAnthropicMessage,
    FakeCoder,
    FakeMcpServer,
    FakeOpenAI,
    FakeOpenAIAnswer,
    FakeTemplate,
    FakeVersion,
    LoopbackServer,
    RedisServer,
    ScriptedModel,
    echo_tools,
    serve_fake_coder,
)

README = Path(__file__).resolve().parent.parent / "README.md"
EXAMPLE = re.compile(r"```python\n# README example: (?P<name>[a-z-]+)\n(?P<code>.*?)```", re.DOTALL)
# The simulated deployment the embedding example talks to, in real time: fast, so the test is too.
QUICK = FakeVersion("v1", agents=[FakeAgent(connect_seconds=0.01, startup_seconds=0.01)], queue_seconds=0.01)
# A pytest run in a fresh process: its start-up, imports and a loopback server per backend, on a loaded machine.
PYTEST_RUN_TIMEOUT_S = 300
# Guards against a hung request to a served fake, in real time; never assertions.
GUARD_S = 60
OPENAI_KEY = "sk-test-not-a-real-key"
ANTHROPIC_KEY = "sk-ant-test-not-a-real-key"


def example_code() -> dict[str, str]:
    text = README.read_text()
    found = {match["name"]: match["code"] for match in EXAMPLE.finditer(text)}
    assert len(found) == text.count("```python"), "every python block must start with '# README example: <name>'"
    return found


def examples() -> dict[str, dict[str, Any]]:
    namespaces: dict[str, dict[str, Any]] = {}
    for name, code in example_code().items():
        namespace: dict[str, Any] = {"__name__": f"readme_{name}"}
        exec(compile(code, f"README.md:{name}", "exec"), namespace)
        namespaces[name] = namespace
    return namespaces


def test_readme_has_the_examples_this_file_runs() -> None:
    names = {"embedding", "testing", "openai", "openai-responses", "anthropic", "web-backend", "replicas"}
    assert set(examples()) == names


def test_embedding_example_runs_a_turn_against_a_coder_deployment() -> None:
    serve: Callable[..., Coroutine[Any, Any, Chat]] = examples()["embedding"]["serve"]
    fake = FakeCoder(SystemClock(), templates=[FakeTemplate("docker", [QUICK])])
    model = ScriptedModel([ModelResponse(text="Hello!")])
    with serve_fake_coder(fake) as coder:
        chat = anyio.run(serve, model, coder.url, coder.token, Chat(id="c1", owner="alice"), "Hi")
    assert [message.text for message in chat.messages] == ["Hi", "Hello!"]
    assert "create_workspace" in model.offered[0]


def test_replicas_example_shares_a_workspaces_listing_between_two_replicas(redis_server: RedisServer) -> None:
    serve: Callable[..., Coroutine[Any, Any, Chat]] = examples()["replicas"]["serve_on_replica"]
    running = FakeVersion("v1", agents=[FakeAgent(mcp_servers=[FakeMcpServer(tools=echo_tools("search"))])])
    fake = FakeCoder(SystemClock(), templates=[FakeTemplate("docker", [running])])
    workspace_id = fake.create_workspace("dev", "docker")
    chat = Chat(id="c1", owner="alice", workspace=WorkspaceBinding(workspace_id))
    answered = []
    with serve_fake_coder(fake) as coder:
        for replica in ("first", "second"):  # a turn on each, as a load balancer may send them
            model = ScriptedModel([ModelResponse(text=f"Answered by the {replica} replica.")])
            chat = anyio.run(serve, model, redis_server.url, coder.url, coder.token, chat, "Hi")
            answered.append("mcp__search" in model.offered[0])
    assert answered == [True, True]  # each replica's first step offered the workspace's tool
    assert fake.mcp_list_calls("dev") == 1  # listed once: the second replica read it from Redis


def test_testing_example_passes_pasted_into_a_new_test_file(tmp_path: Path) -> None:
    """As a user would run it: a file of its own, in a directory with no conftest, under the package's plugin."""
    namespace = examples()["testing"]
    tests = [
        value for key, value in namespace.items() if key.startswith("test_") and inspect.iscoroutinefunction(value)
    ]
    assert len(tests) == 1
    (tmp_path / "test_pasted.py").write_text(example_code()["testing"])
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "test_pasted.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=PYTEST_RUN_TIMEOUT_S,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    passed = re.findall(r"::(\S+) PASSED", run.stdout)
    assert passed == [f"{tests[0].__name__}[asyncio]", f"{tests[0].__name__}[trio]"]  # on both anyio backends


@pytest.mark.parametrize(("name", "function", "path"), [
    ("openai", "ask_openai", "/v1/chat/completions"),
    ("openai-responses", "ask_openai_responses", "/v1/responses"),
])  # fmt: skip
def test_the_openai_examples_run_a_turn_through_the_sdk_client(name: str, function: str, path: str) -> None:
    ask: Callable[..., Coroutine[Any, Any, str]] = examples()[name][function]
    with FakeOpenAI([FakeOpenAIAnswer(text="Paris.")]) as fake:
        answer = anyio.run(ask, "Capital of France?", fake.base_url, OPENAI_KEY)
    assert answer == "Paris."
    [seen] = fake.requests
    assert (seen.path, seen.body["model"], seen.had_key) == (path, "gpt-4.1-mini", True)
    assert "Capital of France?" in str(seen.body)


def test_the_anthropic_example_streams_the_answer_as_it_is_written() -> None:
    stream: Callable[..., Coroutine[Any, Any, list[str]]] = examples()["anthropic"]["stream_anthropic"]
    with FakeAnthropic([FakeAnthropicMessage.text("Paris, on the Seine.", text_piece=5)]) as fake:
        pieces = anyio.run(stream, "Capital of France?", fake.base_url, ANTHROPIC_KEY)
    assert len(pieces) > 1
    assert "".join(pieces) == "Paris, on the Seine."
    [seen] = fake.requests
    assert (seen.body["model"], seen.body["max_tokens"], seen.body["stream"]) == ("claude-sonnet-4-5", 4096, True)


def test_the_web_backend_example_serves_a_streamed_turn(tmp_path: Path) -> None:
    web_backend: Callable[..., Any] = examples()["web-backend"]["web_backend"]
    fake_coder = FakeCoder(SystemClock(), templates=[FakeTemplate("docker", [QUICK])])
    with serve_fake_coder(fake_coder) as coder, FakeOpenAI([FakeOpenAIAnswer(text="Hello!")]) as openai_api:
        env = {
            "CHAT_MODEL": "openai:gpt-test",
            "OPENAI_API_KEY": OPENAI_KEY,
            "OPENAI_BASE_URL": openai_api.base_url,
            "CODER_URL": coder.url,
            "CODER_SESSION_TOKEN": coder.token,
            "CHAT_DB": str(tmp_path / "chats.sqlite3"),
        }
        app = web_backend(env)
        with LoopbackServer(lambda: app) as service:

            async def post() -> httpx.Response:
                async with httpx.AsyncClient(base_url=service.base_url, timeout=GUARD_S) as browser:
                    return await browser.post("/chats/c1/messages", json={"text": "Hi"})

            response = anyio.run(post)
    assert response.status_code == 200
    assert response.text.rstrip().endswith('event: done\ndata: {"text": "Hello!", "steps": 1}')
    assert "create_workspace" in str(openai_api.requests[0].body["tools"])
    assert (tmp_path / "chats.sqlite3").exists()
