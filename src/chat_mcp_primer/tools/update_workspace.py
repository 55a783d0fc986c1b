"""``update_workspace``: move the chat's workspace onto a template version, restarting it, and wait until ready."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chat_mcp_primer.model import ToolSpec
from chat_mcp_primer.tools._base import (
    LifecycleTool,
    bound_workspace,
    optional_str,
    post_build,
    ready_after_build,
    schema,
    settle,
    stop_and_wait,
)
from chat_mcp_primer.workspace.coder import Result, Transition, is_running, version_refusal


class UpdateWorkspace(LifecycleTool):
    spec = ToolSpec(
        name="update_workspace",
        description=(
            "Update the chat's workspace to a template version (default: the template's active version): "
            "stop it, start it on that version, and wait until it is ready."
        ),
        input_schema=schema({"template_version_id": {"type": "string", "description": "Target version (optional)."}}),
    )

    async def run(self, arguments: Mapping[str, Any]) -> Result:
        workspace = await bound_workspace(self.context)
        if isinstance(workspace, dict):
            return workspace
        version_id = optional_str(arguments, "template_version_id") or workspace.template_active_version_id
        refusal = await version_refusal(self.context.backend.client, workspace, version_id)
        if refusal is not None:
            return {"updated": False, "workspace_name": workspace.name, "error": refusal}
        workspace = await settle(self.context, workspace)
        if is_running(workspace):
            stopped = await stop_and_wait(self.context, workspace)
            if "error" in stopped:
                return {"updated": False, "workspace_name": workspace.name, **stopped}
        started = await post_build(self.context, workspace, Transition.START, version_id)
        result = await ready_after_build(self.context, workspace, started)
        return {
            "updated": "error" not in result,
            "workspace_name": workspace.name,
            "template_version_id": version_id,
            **result,
        }
