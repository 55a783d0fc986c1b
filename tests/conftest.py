from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chat_mcp_primer.events import Events
from chat_mcp_primer.model import WorkspaceBinding
from chat_mcp_primer.testing import (
    EventRecorder,
    FakeCoder,
    InMemoryWorkspaces,
    MockClock,
    ServedFakeCoder,
    serve_fake_coder,
)
from chat_mcp_primer.workspace_mcp import MemoryToolCache, PrimerSettings, TurnWorkspace


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
) -> Callable[..., TurnWorkspace]:
    """A `TurnWorkspace` on the fake clock, the in-memory workspaces, the shared cache and the event log."""

    def make(binding: WorkspaceBinding | None = None, **settings: Any) -> TurnWorkspace:
        return TurnWorkspace(
            chat_id="chat-1",
            binding=binding,
            source=workspaces,
            cache=cache,
            clock=clock,
            settings=PrimerSettings(**settings),
            events=Events(clock.now, event_log),
        )

    return make
