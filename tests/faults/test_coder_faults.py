"""The fault matrix, Coder side: whole turns against FakeCoder over loopback HTTP, with the workspace MCP
server behind Coder's app proxy, while Coder misbehaves or the workspace does.

Every row checks that the turn completes, the result the model got from the workspace tool (clear, with
the keys a UI needs), whether the workspace's MCP tools were offered, that discovery stayed within its
budget plus one attempt and cached nothing empty, and (`leaks`) that nothing was left open.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import pytest
from _harness import GUARD_S

from chat_mcp_primer import Chat, ChatRuntime, ModelRequest, ModelResponse, TurnResult, WorkspaceBinding
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
from chat_mcp_primer.tools import CoderWorkspaces
from chat_mcp_primer.workspace.coder import CoderBackend, CoderClient
from chat_mcp_primer.workspace_mcp import ListingLimits, MemoryToolCache, PrimerSettings, SessionSettings

pytestmark = pytest.mark.anyio

SETTINGS = PrimerSettings(prepare_poll_interval=1.0)
# Long enough for any primer to end by itself: its budget plus one attempt.
THINKS = SETTINGS.max_wait + SessionSettings().dial_timeout + ListingLimits().discovery_timeout
WORKSPACE_ROUTE = "GET /api/v2/workspaces/{workspace}"
SIGNED_OUT = "You are signed out or your session has expired"

Act = Callable[[FakeCoder], None]


def agent(**knobs: Any) -> FakeAgent:
    return FakeAgent(mcp_servers=[FakeMcpServer(tools=echo_tools("search"), cold_start_seconds=3)], **knobs)


@dataclass(frozen=True, slots=True)
class Row:
    id: str
    before: Act = lambda fake: None  # faults injected before the turn
    at: tuple[float, Act] | None = None  # (fake time, what happens then), mid-turn
    agent: FakeAgent = field(default_factory=agent)
    tools_offered: bool = True
    expect: Callable[[dict[str, Any]], None] = lambda result: None


def created_cleanly(result: dict[str, Any]) -> None:
    assert result["created"] is True
    assert "error" not in result
    assert "agent_status" not in result
    assert "startup_scripts" not in result


def build_failed(result: dict[str, Any]) -> None:
    assert result["created"] is False
    assert result["error"] == "build failed (terraform apply: exit status 1)"
    assert result["job_error"] == "terraform apply: exit status 1"
    assert result["error_code"] == "INSUFFICIENT_QUOTA"
    assert result["build_id"]


def build_canceled(result: dict[str, Any]) -> None:
    assert result["created"] is False
    assert result["error"] == "build was canceled"
    assert result["build_id"]


def agent_not_ready(result: dict[str, Any]) -> None:
    assert result["agent_status"] == "not_ready"
    assert result["agent_error"] == "agent status is timeout"


def scripts_failed(state: str) -> Callable[[dict[str, Any]], None]:
    def expect(result: dict[str, Any]) -> None:
        assert result["startup_scripts"] == "startup_scripts_failed"
        assert result["lifecycle_state"] == state

    return expect


ROWS = [
    Row("5xx-burst", lambda fake: fake.fail_requests(4, status=502), expect=created_cleanly),
    Row("503-burst", lambda fake: fake.fail_requests(4, status=503), expect=created_cleanly),
    Row("429-retry-after", lambda fake: fake.rate_limit(3, retry_after_seconds=7), expect=created_cleanly),
    Row("connection-reset", lambda fake: fake.drop_connections(3), expect=created_cleanly),
    Row(
        "build-failed",
        lambda fake: fake.fail_next_build(error_code="INSUFFICIENT_QUOTA"),
        tools_offered=False,
        expect=build_failed,
    ),
    Row(
        "build-canceled",
        at=(2.0, lambda fake: fake.cancel_latest_build("dev")),
        tools_offered=False,
        expect=build_canceled,
    ),
    Row(
        "agent-timeout",
        agent=agent(never_connects=True, connection_timeout_seconds=60),
        tools_offered=False,
        expect=agent_not_ready,
    ),
    Row(
        "agent-start-error",
        agent=agent(startup_outcome="start_error"),
        tools_offered=False,
        expect=scripts_failed("start_error"),
    ),
    Row(
        "agent-start-timeout",
        agent=agent(startup_outcome="start_timeout"),
        tools_offered=False,
        expect=scripts_failed("start_timeout"),
    ),
]


@dataclass(frozen=True, slots=True)
class CoderTurn:
    result: TurnResult
    model: ScriptedModel
    events: EventRecorder
    cache: MemoryToolCache

    def offered_mcp(self, step: int) -> list[str]:
        return [name for name in self.model.offered[step] if name.startswith("mcp__")]

    def results_of(self, tool: str) -> list[dict[str, Any]]:
        return [
            json.loads(m.result.text) if m.result.text.startswith("{") else {"text": m.result.text}
            for m in self.result.added
            if m.result is not None and m.tool_name == tool
        ]

    def assert_discovery_bounded(self) -> None:
        for started, end in zip(
            self.events.named("primer.started"),
            [e for e in self.events.events if e.name in ("primer.succeeded", "primer.gave_up", "primer.cancelled")],
            strict=True,
        ):
            assert end.at <= started.at + THINKS
        assert len(self.events.named("primer.attempt")) <= SETTINGS.max_attempts * len(
            self.events.named("primer.started")
        )
        assert len(self.events.named("session.closed")) == len(self.events.named("session.dialing"))


async def coder_turn(
    clock: MockClock,
    fake: FakeCoder,
    coder: ServedFakeCoder,
    script: list[Any],
    *,
    at: tuple[float, Act] | None = None,
    chat: Chat | None = None,
) -> CoderTurn:
    model = ScriptedModel(script)
    events = EventRecorder()
    cache = MemoryToolCache()
    async with CoderClient(coder.url, coder.token, clock=clock) as client:
        backend = CoderBackend(client)
        runtime = ChatRuntime(
            model,
            workspaces=CoderWorkspaces(backend),
            clock=clock,
            cache=cache,
            primer=SETTINGS,
            on_event=events,
        )
        with anyio.fail_after(GUARD_S):
            async with clock.autojump(), runtime, anyio.create_task_group() as group:
                if at is not None:
                    when, act = at

                    async def mid_turn() -> None:
                        await clock.sleep(when, "operator")
                        act(fake)

                    group.start_soon(mid_turn)
                result = await runtime.run_turn(chat or Chat(id="chat-1", owner="alice"), "set up and search")
                group.cancel_scope.cancel()
    return CoderTurn(result=result, model=model, events=events, cache=cache)


def thinking(clock: MockClock, response: ModelResponse) -> Callable[[ModelRequest], Awaitable[ModelResponse]]:
    async def step(request: ModelRequest) -> ModelResponse:
        await clock.sleep(THINKS, "model")
        return response

    return step


def served(clock: MockClock, row_agent: FakeAgent) -> tuple[FakeCoder, ServedFakeCoder]:
    fake = FakeCoder(clock, templates=[FakeTemplate("docker", [FakeVersion("v1", agents=[row_agent])])])
    return fake, serve_fake_coder(fake)


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.id)
async def test_create_workspace_under_a_coder_fault_gives_a_clear_result(clock: MockClock, row: Row) -> None:
    fake, coder = served(clock, row.agent)
    with coder:
        row.before(fake)
        create = call("create_workspace", json.dumps({"template_id": fake.template_id("docker"), "name": "dev"}))
        script = [
            ModelResponse(tool_calls=(create,)),
            thinking(clock, ModelResponse(tool_calls=(call("mcp__search"),))),
            ModelResponse(text="done"),
        ]
        turn = await coder_turn(clock, fake, coder, script, at=row.at)

    assert turn.result.stop_reason == "completed"
    [created] = turn.results_of("create_workspace")
    row.expect(created)
    [searched] = turn.results_of("mcp__search")
    if row.tools_offered:
        assert turn.offered_mcp(1) == ["mcp__search"]
        assert searched == {"text": "search called with {}"}
    else:
        assert turn.offered_mcp(1) == turn.offered_mcp(2) == []
        assert searched == {"text": "unknown tool 'mcp__search'; call one of the tools you were offered"}
        assert len(turn.cache) == 0
    assert fake.pending_faults == 0
    turn.assert_discovery_bounded()


@pytest.mark.parametrize("deleted", [False, True], ids=["token-revoked", "workspace-deleted"])
async def test_a_workspace_lost_mid_turn_gives_clear_results(clock: MockClock, deleted: bool) -> None:
    fake, coder = served(clock, agent())
    with coder:
        workspace_id = fake.create_workspace("dev", "docker", state="running")

        def lose_it(request: ModelRequest) -> ModelResponse:
            if deleted:
                fake.delete_workspace("dev")  # someone deletes it: reads by id get 410 from now on
            else:
                fake.revoke_token()  # the deployment revokes the session
            return ModelResponse(tool_calls=(call("mcp__search"), call("start_workspace")))

        chat = Chat(id="chat-1", owner="alice", workspace=WorkspaceBinding(workspace_id))
        script = [lose_it, thinking(clock, ModelResponse(tool_calls=(call("mcp__search"),))), ModelResponse(text="ok")]
        turn = await coder_turn(clock, fake, coder, script, chat=chat)

    assert turn.result.stop_reason == "completed"
    assert turn.offered_mcp(0) == ["mcp__search"]  # the running workspace's tools, from the top of the turn
    [started] = turn.results_of("start_workspace")
    first, second = turn.results_of("mcp__search")
    assert first["text"].startswith(("workspace tool 'mcp__search' failed", "workspace connection failed"))
    if deleted:
        assert started == {"error": "The chat's workspace was deleted; use create_workspace to make a new one."}
    else:
        assert SIGNED_OUT in started["error"]
    # Discovery was done at the top of the turn, so the tools stay offered; every call fails clearly.
    assert turn.offered_mcp(1) == ["mcp__search"]
    assert second["text"].startswith(("workspace tool 'mcp__search' failed", "workspace connection failed"))
    turn.assert_discovery_bounded()


async def test_a_build_started_by_someone_else_meanwhile_is_waited_for_not_reported(clock: MockClock) -> None:
    """409 "build already active": restart's start meets a start build someone else made after the stop."""
    fake, coder = served(clock, agent())
    with coder:
        workspace_id = fake.create_workspace("dev", "docker", state="running")

        def someone_starts_it(fake: FakeCoder) -> None:
            # Blocking on purpose: the build must exist before the restart, polling every 2 s, looks again.
            response = httpx.post(
                f"{coder.url}/api/v2/workspaces/{workspace_id}/builds",
                json={"transition": "start"},
                headers=coder.headers,
            )
            assert response.status_code == 201

        chat = Chat(id="chat-1", owner="alice", workspace=WorkspaceBinding(workspace_id))
        script = [
            ModelResponse(tool_calls=(call("restart_workspace"),)),
            thinking(clock, ModelResponse(tool_calls=(call("mcp__search"),))),
            ModelResponse(text="done"),
        ]
        # The stop (queued 1 s, 2 s long) is done at t=3; the restart sees it at its poll at t=4.
        turn = await coder_turn(clock, fake, coder, script, at=(3.5, someone_starts_it), chat=chat)
        posted = fake.request_count("POST /api/v2/workspaces/{workspace}/builds")

    assert turn.result.stop_reason == "completed"
    [restarted] = turn.results_of("restart_workspace")
    assert restarted["restarted"] is True
    assert "error" not in restarted
    assert posted == 4  # stop; someone's start; the restart's start (409); the restart's start again
    assert turn.offered_mcp(2) == ["mcp__search"]
    assert turn.results_of("mcp__search") == [{"text": "search called with {}"}]
    turn.assert_discovery_bounded()
