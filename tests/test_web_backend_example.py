"""The web backend example, end to end over loopback HTTP: the service (uvicorn), FakeCoder with a real
workspace MCP server behind its app proxy, and a model; httpx as the browser."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from examples.web_backend.app import ChatStore, create_app

from chat_mcp_primer import ModelResponse, ReadinessSettings, SystemClock
from chat_mcp_primer.testing import (
    FakeAgent,
    FakeCoder,
    FakeMcpServer,
    FakeTemplate,
    FakeVersion,
    LoopbackServer,
    ScriptedModel,
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


def events_of(body: str) -> list[tuple[str, dict[str, Any]]]:
    parsed = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        parsed.append((lines["event"], json.loads(lines["data"])))
    return parsed


async def test_a_message_streams_its_turn_and_the_chat_is_kept_for_the_next(
    coder: ServedFakeCoder, tmp_path: Path
) -> None:
    create = call("create_workspace", json.dumps({"template_id": coder.fake.template_id("docker"), "name": "dev"}))
    model = ScriptedModel(
        [
            ModelResponse(text="Setting up a workspace.", tool_calls=(create,)),
            ModelResponse(tool_calls=(call("mcp__search", '{"q": "primer"}'),)),
            ModelResponse(text="Found it."),
            ModelResponse(text="Still here."),  # the second message
        ]
    )
    db = tmp_path / "chats.sqlite3"
    app = create_app(model, coder.url, coder.token, db, readiness=QUICK)
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
    # The chat was saved with its workspace, and the next message continued it.
    assert events_of(second.text)[-1] == ("done", {"text": "Still here.", "steps": 1})
    saved = await ChatStore(db).load("c1", owner="nobody")
    assert saved.workspace is not None
    assert [m.text for m in saved.messages if m.role.value == "user"] == ["set me up and search", "and now?"]
    assert refused.status_code == 400


async def test_a_client_that_disconnects_cancels_its_turn(coder: ServedFakeCoder, tmp_path: Path) -> None:
    # A build that outlasts the test: the turn can only end by being cancelled.
    slow = coder.fake.add_template(FakeTemplate("slow", [FakeVersion("v1", agents=[FakeAgent()], build_seconds=3600)]))
    create = call("create_workspace", json.dumps({"template_id": slow, "name": "dev"}))
    model = ScriptedModel([ModelResponse(text="Setting up.", tool_calls=(create,)), ModelResponse(text="never")])
    app = create_app(model, coder.url, coder.token, tmp_path / "chats.sqlite3", readiness=QUICK)
    with LoopbackServer(lambda: app) as service, anyio.fail_after(GUARD_S):
        async with httpx.AsyncClient(base_url=service.base_url, timeout=GUARD_S) as browser:
            async with browser.stream("POST", "/chats/c1/messages", json={"text": "set me up"}) as response:
                async for line in response.aiter_lines():
                    if line == "event: tool_started":
                        break  # the user closes the page while the workspace builds
            while app.state.runtime.active_turns:  # noqa: ASYNC110 - the turn ends in the service's own thread
                await anyio.sleep(0.01)
    assert len(model.requests) == 1  # the cancelled turn never asked the model again
    unsaved = await ChatStore(tmp_path / "chats.sqlite3").load("c1", owner="x")
    assert unsaved.messages == ()  # a turn that did not finish is not kept
