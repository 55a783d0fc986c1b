from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from tests._turns import own_hub_turn

from chat_mcp_primer.model import WorkspaceBinding
from chat_mcp_primer.testing import (
    EventRecorder,
    FakeCoder,
    InMemoryWorkspaces,
    MockClock,
    RedisServer,
    ServedFakeCoder,
    serve_fake_coder,
)
from chat_mcp_primer.workspace_mcp import MemoryToolCache, TurnWorkspace


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Everything that does not need uvicorn in the test's own loop runs on both anyio backends."""
    return str(request.param)


@pytest.fixture
def clock(mock_clock: MockClock) -> MockClock:
    """The plugin's `mock_clock`, by the shorter name these tests use."""
    return mock_clock


@pytest.fixture
def event_log() -> EventRecorder:
    return EventRecorder()


@pytest.fixture
def workspaces() -> InMemoryWorkspaces:
    return InMemoryWorkspaces()


@pytest.fixture
def cache() -> MemoryToolCache:
    return MemoryToolCache()


@pytest.fixture
def coder(fake: FakeCoder) -> Iterator[ServedFakeCoder]:
    """The module's ``fake`` Coder, served over loopback HTTP for the real clients."""
    with serve_fake_coder(fake) as served:
        yield served


@pytest.fixture
def make_turn(
    clock: MockClock, workspaces: InMemoryWorkspaces, cache: MemoryToolCache, event_log: EventRecorder
) -> Callable[..., AbstractAsyncContextManager[TurnWorkspace]]:
    """A `TurnWorkspace` (on a hub of its own) on the fake clock, the in-memory workspaces, the shared cache
    and the event log; ``settings`` are fields of any of the settings."""

    def make(binding: WorkspaceBinding | None = None, **settings: Any) -> AbstractAsyncContextManager[TurnWorkspace]:
        return own_hub_turn(workspaces, cache, clock, event_log, binding, **settings)

    return make


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the session's tests of the shared cache (each flushes it first)."""
    with RedisServer() as server:
        yield server
