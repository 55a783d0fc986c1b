"""A stand-in for ``create_workspace`` for tests that drive whole turns without Coder."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chat_mcp_primer import ToolResult, ToolSpec, TurnWorkspace, WorkspaceBinding


class Provision:
    """Binds the chat to a build of ``ready``'s workspace, then to ``ready`` itself (its agent is up), and
    reports the agent ready, which launches the primer: the notifications create_workspace sends."""

    spec = ToolSpec(name="provision", description="Create a workspace and wait for its agent.")

    def __init__(self, turn: TurnWorkspace, ready: WorkspaceBinding) -> None:
        self._turn = turn
        self._ready = ready

    async def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        self._turn.bind(WorkspaceBinding(self._ready.workspace_id, build_id=self._ready.build_id))
        self._turn.bind(self._ready)
        self._turn.agent_ready()
        return ToolResult.json({"created": True, "workspace_name": "dev"})
