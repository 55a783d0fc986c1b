"""Many chats woken at once go through a few per pass of the event loop, in order, and none is lost."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from chat_mcp_primer import Chat, ChatRuntime, ModelResponse, PrimerSettings, WorkspaceBinding
from chat_mcp_primer._tasks import BackgroundTasks
from chat_mcp_primer.runtime import WorkspacesFrom
from chat_mcp_primer.testing import (
    EventRecorder,
    InMemoryWorkspaces,
    MockClock,
    ScriptedModel,
    WorkspaceMCPServer,
    call,
    echo_tools,
)
from chat_mcp_primer.workspace_mcp._pacing import Pacer

pytestmark = pytest.mark.anyio

ASKING = 10
PER_PASS = 3
# Guards against hangs in real time (other threads answer); never an assertion about speed.
GUARD_S = 10


async def test_a_burst_goes_through_a_few_per_pass_in_the_order_it_asked() -> None:
    passes = 0
    asked: list[int] = []
    admitted: list[tuple[int, int]] = []  # (who, the pass it went through in)

    async def count_passes() -> None:
        nonlocal passes
        while True:
            await anyio.lowlevel.checkpoint()
            passes += 1

    async def ask(who: int, pacer: Pacer) -> None:
        asked.append(who)
        await pacer.admit()
        admitted.append((who, passes))

    async with BackgroundTasks() as tasks, anyio.create_task_group() as group:
        pacer = Pacer(PER_PASS, tasks)
        group.start_soon(count_passes)
        with anyio.fail_after(GUARD_S):
            async with anyio.create_task_group() as burst:
                for who in range(ASKING):  # all ask in the same pass (trio may run them in any order)
                    burst.start_soon(ask, who, pacer)
        group.cancel_scope.cancel()

    passed_in = dict(admitted)
    assert sorted(passed_in) == sorted(asked)
    # First come, first served: nobody goes through in an earlier pass than someone who asked before it
    # (within a pass, trio may run them in either order).
    in_asking_order = [passed_in[who] for who in asked]
    assert in_asking_order == sorted(in_asking_order)
    assert pacer.queued_total == ASKING - PER_PASS
    # Ten at three a pass need four passes: the last goes through at least two passes after the first
    # (the pass counter may run before or after them within a pass; trio shuffles the order).
    assert admitted[-1][1] - admitted[0][1] >= 2


async def test_waiters_cancelled_in_the_queue_are_never_admitted_and_hold_no_one_up() -> None:
    admitted: list[int] = []

    async def ask(who: int, pacer: Pacer) -> None:
        await pacer.admit()
        admitted.append(who)

    async with BackgroundTasks() as tasks:
        pacer = Pacer(1, tasks)
        with anyio.fail_after(GUARD_S):
            async with anyio.create_task_group() as crowd:
                for who in range(ASKING):
                    crowd.start_soon(ask, who, pacer)
                while pacer.queued_total < ASKING - 1:  # one went through, the others queue
                    await anyio.lowlevel.checkpoint()
                crowd.cancel_scope.cancel()
            late = len(admitted)
            await pacer.admit()  # behind the cancelled places, which are skipped
    assert late < ASKING // 2  # most were still queued when cancelled, and were never admitted
    assert len(admitted) == late


async def test_pacing_one_chat_per_pass_loses_nothing(
    clock: MockClock, workspaces: InMemoryWorkspaces, event_log: EventRecorder
) -> None:
    chats = 20
    binding = WorkspaceBinding("ws-1", agent_id="agent-1")
    with WorkspaceMCPServer(echo_tools("grep"), name="code", clock=clock) as server:
        workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
        model = ScriptedModel([ModelResponse(tool_calls=(call("code__grep"),)), ModelResponse(text="done")] * chats)
        runtime = ChatRuntime(
            model,
            workspaces=WorkspacesFrom(workspaces),
            clock=clock,
            primer=PrimerSettings(admissions_per_pass=1),
            on_event=event_log,
        )
        answers: list[str] = []

        async def chat(number: int) -> None:
            result = await runtime.run_turn(Chat(id=f"chat-{number}", owner="alice", workspace=binding), "grep")
            answers.append(result.text)

        with anyio.fail_after(GUARD_S):
            async with runtime, anyio.create_task_group() as group:
                for number in range(chats):
                    group.start_soon(chat, number)
    assert answers == ["done"] * chats
    assert server.list_calls == 1
    assert [event.fields["is_error"] for event in event_log.named("tool.called")] == [False] * chats


def test_a_pacer_that_admits_no_one_is_refused_up_front() -> None:
    with pytest.raises(ValueError, match="admissions_per_pass"):
        PrimerSettings(admissions_per_pass=0)
