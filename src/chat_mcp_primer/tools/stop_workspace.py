"""``stop_workspace``: stop the chat's workspace (idempotent)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chat_mcp_primer.model import ToolSpec
from chat_mcp_primer.tools._base import LifecycleTool, bound_workspace, schema, settle, stop_and_wait
from chat_mcp_primer.workspace.coder import Result, is_stopped


class StopWorkspace(LifecycleTool):
    spec = ToolSpec(
        name="stop_workspace",
        description="Stop the chat's workspace. Its tools stop being available until it is started again.",
        input_schema=schema(),
    )

    async def run(self, arguments: Mapping[str, Any]) -> Result:
        workspace = await bound_workspace(self.context)
        if isinstance(workspace, dict):
            return workspace
        workspace = await settle(self.context, workspace)
        if is_stopped(workspace):
            return {"stopped": True, "no_build": True, "workspace_name": workspace.name}
        failure = await stop_and_wait(self.context, workspace)
        if failure is not None:
            return {"stopped": False, "workspace_name": workspace.name, **failure}
        binding = self.context.turn.binding
        return {"stopped": True, "workspace_name": workspace.name, "build_id": binding.build_id if binding else None}
