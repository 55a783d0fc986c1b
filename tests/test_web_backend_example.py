"""The web backend example, end to end over loopback HTTP: the service (uvicorn), FakeCoder with a real
workspace MCP server behind its app proxy, and `OpenAIChatModel` over the official SDK talking to FakeOpenAI
(OpenAI's streamed wire format), opened from ``CHAT_MODEL`` as the service does; httpx as the browser."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from examples.web_backend.app import ChatStore, app_from_environment, create_app

from chat_mcp_primer import ReadinessSettings, SystemClock
from chat_mcp_primer.models import ModelSpec
from chat_mcp_primer.testing import (
    FakeAgent,
    FakeCoder,
    FakeMcpServer,
    FakeOpenAI,
    FakeOpenAIAnswer,
    FakeTemplate,
    FakeVersion,
    LoopbackServer,
    ServedFakeCoder,
    call,
    echo_tools,
    serve_fake_coder,
)

pytestmark = pytest.mark.anyio

# Guards against hangs in real time (the service and FakeCoder run on the real clock); never assertions.
GUARD_S = 60
# The fake deployment's builds and agents take tenths of a second here, and the tools look that often.
QUICK = ReadinessSettings(build_poll_interval=0.05, agent_probe_interval=0.05, lifecycle_poll_interval=0.05)
KEY = "sk-test-not-a-real-key"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def coder() -> Iterator[ServedFakeCoder]:
    server = FakeMcpServer(tools=echo_tools("search"), cold_start_seconds=0.3)
    agent = FakeAgent(connect_seconds=0.1, startup_seconds=0.1, mcp_servers=[server])
    version = FakeVersion("v1", agents=[agent], queue_seconds=0.05, build_seconds=0.2)
    with serve_fake_coder(FakeCoder(SystemClock(), templates=[FakeTemplate("docker", [version])])) as served:
        yield served


@pytest.fixture
def openai_api() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as served:
        yield served


def chat_model(openai_api: FakeOpenAI) -> ModelSpec:
    """``CHAT_MODEL`` as the service reads it: Chat Completions through the SDK, at the fake's URL."""
    return ModelSpec.parse("openai:gpt-test", env={"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": openai_api.base_url})


def tool_names(body: dict[str, Any]) -> list[str]:
    return [tool["function"]["name"] for tool in body.get("tools", [])]


def events_of(body: str) -> list[tuple[str, dict[str, Any]]]:
    parsed = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        parsed.append((lines["event"], json.loads(lines["data"])))
    return parsed


async def test_a_message_streams_its_turn_and_the_chat_is_kept_for_the_next(
    coder: ServedFakeCoder, openai_api: FakeOpenAI, tmp_path: Path
) -> None:
    create = call("create_workspace", json.dumps({"template_id": coder.fake.template_id("docker"), "name": "dev"}))
    openai_api.reply(
        # Streamed in pieces of four characters: the tool call's arguments arrive split across chunks.
        FakeOpenAIAnswer(text="Setting up a workspace.", tool_calls=(create,)),
        FakeOpenAIAnswer(tool_calls=(call("mcp__search", '{"q": "primer"}'),)),
        FakeOpenAIAnswer(text="Found it."),
        FakeOpenAIAnswer(text="Still here."),  # the second message
    )
    db = tmp_path / "chats.sqlite3"
    app = create_app(chat_model(openai_api), coder.url, coder.token, db, readiness=QUICK)
    with LoopbackServer(lambda: app) as service, anyio.fail_after(GUARD_S):
        async with httpx.AsyncClient(base_url=service.base_url, timeout=GUARD_S) as browser:
            first = await browser.post("/chats/c1/messages", json={"text": "set me up and search"})
            second = await browser.post("/chats/c1/messages", json={"text": "and now?"})
            refused = await browser.post("/chats/c1/messages", json={"text": ""})

    assert first.headers["content-type"].startswith("text/event-stream")
    kinds = [kind for kind, _ in events_of(first.text)]
    assert kinds[0] == "text"
    for expected in ("tool_started", "workspace", "held", "resumed", "tools_added"):
        assert expected in kinds
    assert kinds.index("held") < kinds.index("resumed") < kinds.index("done")
    assert ("tools_added", {"names": ["mcp__search"]}) in events_of(first.text)
    assert events_of(first.text)[-1] == ("done", {"text": "Found it.", "steps": 3})
    assert coder.fake.mcp_tool_calls("dev") == 1
    # Every step went to the provider as a stream, with the tools of that step.
    asked = [seen.body for seen in openai_api.requests]
    assert len(asked) == 4
    assert all(body["stream"] and body["model"] == "gpt-test" for body in asked)
    assert "create_workspace" in tool_names(asked[0])
    assert "mcp__search" not in tool_names(asked[0])
    assert "mcp__search" in tool_names(asked[1])
    assert "Setting up a workspace." in "".join(data["text"] for kind, data in events_of(first.text) if kind == "text")
    # The chat was saved with its workspace, and the next message continued it.
    assert events_of(second.text)[-1] == ("done", {"text": "Still here.", "steps": 1})
    saved = await ChatStore(db).load("c1", owner="nobody")
    assert saved.workspace is not None
    assert [m.text for m in saved.messages if m.role.value == "user"] == ["set me up and search", "and now?"]
    assert refused.status_code == 400


async def test_a_client_that_disconnects_cancels_its_turn(
    coder: ServedFakeCoder, openai_api: FakeOpenAI, tmp_path: Path
) -> None:
    # A build that outlasts the test: the turn can only end by being cancelled.
    slow = coder.fake.add_template(FakeTemplate("slow", [FakeVersion("v1", agents=[FakeAgent()], build_seconds=3600)]))
    create = call("create_workspace", json.dumps({"template_id": slow, "name": "dev"}))
    openai_api.reply(FakeOpenAIAnswer(text="Setting up.", tool_calls=(create,)), FakeOpenAIAnswer(text="never"))
    app = create_app(chat_model(openai_api), coder.url, coder.token, tmp_path / "chats.sqlite3", readiness=QUICK)
    with LoopbackServer(lambda: app) as service, anyio.fail_after(GUARD_S):
        async with httpx.AsyncClient(base_url=service.base_url, timeout=GUARD_S) as browser:
            async with browser.stream("POST", "/chats/c1/messages", json={"text": "set me up"}) as response:
                async for line in response.aiter_lines():
                    if line == "event: tool_started":
                        break  # the user closes the page while the workspace builds
            while app.state.runtime.active_turns:  # noqa: ASYNC110 - the turn ends in the service's own thread
                await anyio.sleep(0.01)
    assert len(openai_api.requests) == 1  # the cancelled turn never asked the model again
    unsaved = await ChatStore(tmp_path / "chats.sqlite3").load("c1", owner="x")
    assert unsaved.messages == ()  # a turn that did not finish is not kept


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "CHAT_MODEL: a model is given as provider:model, e.g. openai:gpt-4.1-mini (got '')"),
        ({"CHAT_MODEL": "anthropic:claude-sonnet-4-5"}, "CHAT_MODEL: anthropic:claude-sonnet-4-5 needs an API key: set "
         "ANTHROPIC_API_KEY"),
        ({"CHAT_MODEL": "openai:gpt-4.1-mini", "OPENAI_API_KEY": KEY}, "CODER_URL is not set"),
    ],
    ids=["no-model", "no-key", "no-coder"],
)  # fmt: skip
def test_the_service_refuses_to_start_without_a_usable_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(SystemExit) as stopped:
        app_from_environment(env)
    assert str(stopped.value) == message
    assert KEY not in str(stopped.value)
