"""The Coder session token never appears in anything a faulty turn produces: events, logs, tool results,
exception text or reprs."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import anyio
import pytest

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
    serve_fake_coder,
)
from chat_mcp_primer.tools import CoderWorkspaceTools
from chat_mcp_primer.workspace.coder import CoderBackend, CoderClient

pytestmark = pytest.mark.anyio

# Guards against a hang in real time only.
GUARD_S = 30


@pytest.fixture
def fake(clock: MockClock) -> FakeCoder:
    server = FakeMcpServer(tools=echo_tools("search"), cold_start_seconds=3)
    return FakeCoder(
        clock, templates=[FakeTemplate("docker", [FakeVersion("v1", agents=[FakeAgent(mcp_servers=[server])])])]
    )


@pytest.fixture
def coder(fake: FakeCoder) -> Iterator[ServedFakeCoder]:
    with serve_fake_coder(fake) as served:
        yield served


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
        backend = CoderBackend(client)
        runtime = ChatRuntime(
            model, backend=backend, workspace_tools=CoderWorkspaceTools(backend), clock=clock, on_event=event_log
        )
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
