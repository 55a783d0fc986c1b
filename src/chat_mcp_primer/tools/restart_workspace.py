"""``restart_workspace``: stop then start the chat's workspace on the same version, and wait until it is ready."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chat_mcp_primer.model import ToolSpec
from chat_mcp_primer.tools._base import (
    LifecycleTool,
    post_build,
    ready_after_build,
    schema,
    settled_workspace,
    stop_and_wait,
)
from chat_mcp_primer.workspace.coder import Result, Transition, is_running


class RestartWorkspace(LifecycleTool):
    spec = ToolSpec(
        name="restart_workspace",
        description="Restart the chat's workspace (stop, then start on the same template version).",
        input_schema=schema(),
    )

    async def run(self, arguments: Mapping[str, Any]) -> Result:
        workspace = await settled_workspace(self.context)
        if isinstance(workspace, dict):
            return workspace
        if is_running(workspace):
            stopped = await stop_and_wait(self.context, workspace)
            if "error" in stopped:
                return {"restarted": False, "workspace_name": workspace.name, **stopped}
        started = await post_build(self.context, workspace, Transition.START)
        result = await ready_after_build(self.context, workspace, started)
        return {"restarted": "error" not in result, "workspace_name": workspace.name, **result}
