"""A finished turn is freed the moment it ends: nothing it owned (its agent's subscription, its primer)
keeps it alive until a garbage collection, which a thousand finished turns would make long."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import anyio
import pytest
from tests._turns import new_hub

from chat_mcp_primer.model import WorkspaceBinding
from chat_mcp_primer.testing import InMemoryWorkspaces, MockClock, WorkspaceMCPServer, echo_tools
from chat_mcp_primer.workspace_mcp import MemoryToolCache

pytestmark = pytest.mark.anyio

BINDING = WorkspaceBinding("ws-1", agent_id="agent-1")
# A guard against a hang in real time, never an assertion about speed.
GUARD_S = 10


@pytest.fixture
def no_collections() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.usefixtures("no_collections")
async def test_a_turn_that_primed_and_offered_tools_is_freed_when_it_ends(
    clock: MockClock, workspaces: InMemoryWorkspaces
) -> None:
    with WorkspaceMCPServer(echo_tools("search"), name="docs", clock=clock) as server:
        workspaces.set_agent("ws-1", "agent-1", (server.endpoint(),))
        async with clock.autojump(), new_hub(MemoryToolCache(), clock) as hub:
            turn = hub.turn(chat_id="chat-1", binding=BINDING, source=workspaces)
            async with turn:
                turn.agent_ready()
                with anyio.fail_after(GUARD_S):
                    offered = await turn.prepare_tools([])
            gone = weakref.ref(turn)
            del turn
            assert gone() is None  # freed by its reference count: no cycle was left behind
            assert len(hub.buses) == 0  # and nothing is kept for the agent nobody hears now
    assert [tool.spec.name for tool in offered or ()] == ["docs__search"]
