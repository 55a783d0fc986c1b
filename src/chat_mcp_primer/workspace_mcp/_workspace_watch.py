"""The workspace's change stream as wake-ups: with Coder, one watch connection per agent's workspace."""

from __future__ import annotations

from chat_mcp_primer.events import EventName, Events
from chat_mcp_primer.model import WorkspaceBinding
from chat_mcp_primer.workspace import WorkspaceMcpSource
from chat_mcp_primer.workspace_mcp._bus import Feed, Publish, Wake, WakeKind
from chat_mcp_primer.workspace_mcp._failures import describe_failure


def workspace_changes(source: WorkspaceMcpSource, binding: WorkspaceBinding, events: Events) -> Feed:
    """Publish each change ``source`` reports for the bound workspace (agent state, an app turning healthy)."""

    async def watch(publish: Publish) -> None:
        try:
            async for reason in source.changes(binding):
                publish(Wake(WakeKind.WORKSPACE_CHANGED, reason))
        except Exception as exc:  # a watch that breaks only loses the early wake-up, never a primer
            events.emit(EventName.PRIMER_WATCH_FAILED, workspace_id=binding.workspace_id, reason=describe_failure(exc))

    return watch
