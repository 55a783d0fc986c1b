"""``stop_workspace``: stop the chat's workspace (idempotent)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chat_mcp_primer.model import ToolSpec
from chat_mcp_primer.tools._base import LifecycleTool, schema, settled_workspace, stop_and_wait
from chat_mcp_primer.workspace.coder import Result, is_stopped


class StopWorkspace(LifecycleTool):
    spec = ToolSpec(
        name="stop_workspace",
        description="Stop the chat's workspace. Its tools stop being available until it is started again.",
        input_schema=schema(),
    )

    async def run(self, arguments: Mapping[str, Any]) -> Result:
        workspace = await settled_workspace(self.context)
        if isinstance(workspace, dict):
            return workspace
        if is_stopped(workspace):
            return {"stopped": True, "no_build": True, "workspace_name": workspace.name}
        result = await stop_and_wait(self.context, workspace)
        return {"stopped": "error" not in result, "workspace_name": workspace.name, **result}
