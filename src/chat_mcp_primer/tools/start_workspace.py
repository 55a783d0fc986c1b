"""``start_workspace``: start the chat's workspace (idempotent) and wait until its agent is ready."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chat_mcp_primer.model import ToolSpec
from chat_mcp_primer.tools._base import (
    LifecycleTool,
    bound_workspace,
    post_build,
    ready_after_build,
    ready_agent,
    schema,
    settle,
)
from chat_mcp_primer.workspace.coder import Result, Transition, is_running


class StartWorkspace(LifecycleTool):
    spec = ToolSpec(
        name="start_workspace",
        description="Start the chat's workspace if it is stopped, and wait until it is ready.",
        input_schema=schema(),
    )

    async def run(self, arguments: Mapping[str, Any]) -> Result:
        workspace = await bound_workspace(self.context)
        if isinstance(workspace, dict):
            return workspace
        build = workspace.latest_build
        if build.job.status.active and build.transition is Transition.START:
            result = await ready_after_build(self.context, workspace, build, fresh=False)
            return {"started": "error" not in result, "workspace_name": workspace.name, **result}
        workspace = await settle(self.context, workspace)
        build = workspace.latest_build
        if is_running(workspace):
            # Already running: wait for readiness and notify anyway, so the primer runs (upstream gap 1).
            result = await ready_agent(self.context, workspace, build, fresh=False)
            return {"started": True, "already_running": True, "workspace_name": workspace.name, **result}
        extra: Result = {}
        version = None
        if workspace.template_require_active_version and workspace.outdated:
            version = workspace.template_active_version_id
            extra = {
                "updated_to_active_version": True,
                "message": "The template requires its active version, so the workspace was updated to it.",
            }
        started = await post_build(self.context, workspace, Transition.START, version)
        result = await ready_after_build(self.context, workspace, started)
        return {"started": "error" not in result, "workspace_name": workspace.name, **extra, **result}
