"""Turns for tests that drive `TurnWorkspace` directly: on a hub of their own, or sharing one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import fields
from typing import Any

from chat_mcp_primer.clock import Clock
from chat_mcp_primer.events import EventHandler, Events
from chat_mcp_primer.model import WorkspaceBinding
from chat_mcp_primer.workspace import WorkspaceMcpSource
from chat_mcp_primer.workspace_mcp import ListingLimits, PrimerSettings, SessionSettings, ToolCache, TurnWorkspace
from chat_mcp_primer.workspace_mcp._hub import WorkspaceMcpHub

_SETTINGS = (PrimerSettings, SessionSettings, ListingLimits)


def settings_by_concern(**values: Any) -> dict[str, Any]:
    """``PrimerSettings``, ``SessionSettings`` and ``ListingLimits`` from one set of field values, as the
    hub's ``primer``, ``sessions`` and ``listing``."""
    made = {}
    for name, kind in zip(("primer", "sessions", "listing"), _SETTINGS, strict=True):
        own = {field.name for field in fields(kind)}
        made[name] = kind(**{key: value for key, value in values.items() if key in own})
    unknown = set(values) - {field.name for kind in _SETTINGS for field in fields(kind)}
    if unknown:
        raise TypeError(f"no such setting: {', '.join(sorted(unknown))}")
    return made


def new_hub(cache: ToolCache, clock: Clock, on_event: EventHandler | None = None, **settings: Any) -> WorkspaceMcpHub:
    events = Events(clock.now, on_event)
    return WorkspaceMcpHub(cache=cache, clock=clock, events=events, **settings_by_concern(**settings))


@asynccontextmanager
async def own_hub_turn(
    source: WorkspaceMcpSource,
    cache: ToolCache,
    clock: Clock,
    on_event: EventHandler | None,
    binding: WorkspaceBinding | None,
    chat_id: str = "chat-1",
    **settings: Any,
) -> AsyncIterator[TurnWorkspace]:
    """A turn of ``chat_id`` on a hub of its own, closed with it (as a runtime never entered hosts one)."""
    async with (
        new_hub(cache, clock, on_event, **settings) as hub,
        hub.turn(chat_id=chat_id, binding=binding, source=source) as turn,
    ):
        yield turn


def shared_turn(
    hub: WorkspaceMcpHub,
    source: WorkspaceMcpSource,
    chat_id: str,
    binding: WorkspaceBinding,
    builtins: tuple[str, ...] = (),
) -> TurnWorkspace:
    """A turn of ``chat_id`` bound to ``binding``, sharing ``hub``'s sessions, cache, clock and settings."""
    return hub.turn(chat_id=chat_id, binding=binding, source=source, reserved_names=builtins)
