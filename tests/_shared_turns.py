"""Turns that share a hub, as the turns of a `ChatRuntime` used as a context manager do."""

from __future__ import annotations

from chat_mcp_primer.model import WorkspaceBinding
from chat_mcp_primer.workspace import WorkspaceMcpSource
from chat_mcp_primer.workspace_mcp import TurnWorkspace, WorkspaceMcpHub


def shared_turn(
    hub: WorkspaceMcpHub,
    source: WorkspaceMcpSource,
    chat_id: str,
    binding: WorkspaceBinding,
    builtins: tuple[str, ...] = (),
) -> TurnWorkspace:
    """A turn of ``chat_id`` bound to ``binding``, sharing ``hub``'s sessions, cache, clock and settings."""
    return TurnWorkspace(
        chat_id=chat_id,
        binding=binding,
        source=source,
        cache=hub.cache,
        clock=hub.clock,
        settings=hub.settings,
        events=hub.events,
        reserved_names=builtins,
        hub=hub,
    )
