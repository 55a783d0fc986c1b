"""The test kit as pytest fixtures, registered through the ``pytest11`` entry point ``chat_mcp_primer``.

Installed with the package, as anyio's plugin is, so a test file needs no conftest to use them:

- ``mock_clock``: a fresh `MockClock` at 0.
- ``event_recorder``: an `EventRecorder` on ``mock_clock``; pass it as ``on_event``.
- ``fake_coder``: a `FakeCoder` on ``mock_clock`` with no templates, served over loopback HTTP for the
  test (`ServedFakeCoder`); add templates with ``fake_coder.fake.add_template(...)``.
- ``workspace_mcp_server``: starts `WorkspaceMCPServer`\\s: ``workspace_mcp_server(echo_tools("search"),
  ready_at=5.0)`` takes the server's arguments (``clock`` defaults to ``mock_clock``) and returns it
  running; every server it started is stopped at teardown.

A coroutine test that takes one of these fixtures runs on anyio, as if marked ``@pytest.mark.anyio``, on
the backends the ``anyio_backend`` fixture names, unless it is marked for another async plugin (``asyncio``,
``trio``). The servers run in threads of their own, so they serve asyncio and trio tests alike.

This module imports the test kit only when a fixture is set up: pytest loads it, and runs every other
test, without the ``testing`` extra; a test that uses a fixture then fails with the line naming the extra.
Disable the plugin with ``-p no:chat_mcp_primer``.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from chat_mcp_primer.testing import EventRecorder, MockClock, ServedFakeCoder, ToolDef, WorkspaceMCPServer

_FIXTURES = frozenset({"mock_clock", "event_recorder", "fake_coder", "workspace_mcp_server"})
# Markers by which a test asks an async plugin to run it: anyio's runs it already; another plugin's (the
# test asks for that plugin) is left to that plugin.
_ASYNC_MARKERS = ("anyio", "asyncio", "trio")


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Module | pytest.Class, name: str, obj: object) -> None:
    """Run a coroutine test that takes one of this plugin's fixtures on anyio, as anyio's marker would."""
    if not (collector.istestfunction(obj, name) and inspect.iscoroutinefunction(obj)):
        return
    own_markers = {mark.name for mark in getattr(obj, "pytestmark", ())}
    if any(marker in own_markers or collector.get_closest_marker(marker) for marker in _ASYNC_MARKERS):
        return
    if _FIXTURES.intersection(inspect.signature(obj).parameters):
        pytest.mark.usefixtures("anyio_backend")(obj)


@pytest.fixture
def mock_clock() -> MockClock:
    """A `MockClock` at 0: time moves only when the test moves it (or ``async with mock_clock.autojump()``)."""
    from chat_mcp_primer.testing import MockClock

    return MockClock()


@pytest.fixture
def event_recorder(mock_clock: MockClock) -> EventRecorder:
    """An `EventRecorder` whose `wait_for` times out on ``mock_clock``: pass it as ``on_event``."""
    from chat_mcp_primer.testing import EventRecorder

    return EventRecorder(clock=mock_clock)


@pytest.fixture
def fake_coder(mock_clock: MockClock) -> Iterator[ServedFakeCoder]:
    """A `FakeCoder` on ``mock_clock``, served over loopback HTTP until the test ends.

    It starts with no templates: ``fake_coder.fake.add_template(FakeTemplate(...))`` returns the id to
    create workspaces from. ``fake_coder.url`` and ``fake_coder.token`` are what a `CoderClient` needs.
    """
    from chat_mcp_primer.testing import FakeCoder, serve_fake_coder

    with serve_fake_coder(FakeCoder(mock_clock)) as served:
        yield served


@pytest.fixture
def workspace_mcp_server(mock_clock: MockClock) -> Iterator[Callable[..., WorkspaceMCPServer]]:
    """Start a `WorkspaceMCPServer` with the given tools and options (``clock`` defaults to ``mock_clock``);
    every server started is stopped when the test ends, the last started first."""
    from chat_mcp_primer.testing import WorkspaceMCPServer

    with contextlib.ExitStack() as running:

        def start(tools: Sequence[ToolDef], /, **options: Any) -> WorkspaceMCPServer:
            options.setdefault("clock", mock_clock)
            return running.enter_context(WorkspaceMCPServer(tools, **options))

        yield start
