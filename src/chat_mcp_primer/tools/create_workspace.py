"""``create_workspace``: create a workspace for the chat (idempotent) and wait until its agent is ready."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from chat_mcp_primer.model import ToolSpec
from chat_mcp_primer.tools._base import (
    LifecycleTool,
    optional_str,
    ready_after_build,
    ready_agent,
    schema,
    string_map,
)
from chat_mcp_primer.workspace.coder import (
    AgentStatus,
    CoderNotFoundError,
    CoderWorkspaceDeletedError,
    JobStatus,
    Result,
    Transition,
    Workspace,
)

# Coder names: at most 32 characters; "chat-" and 12 hex digits leave room and stay unique in practice.
_GENERATED_NAME_HEX_DIGITS = 12


class CreateWorkspace(LifecycleTool):
    spec = ToolSpec(
        name="create_workspace",
        description=(
            "Create a workspace for this chat from a template and wait until it is ready. If the chat already "
            "has a workspace that is building or running, it is reused instead."
        ),
        input_schema=schema(
            {
                "template_id": {"type": "string", "description": "Template id from list_templates."},
                "name": {"type": "string", "description": "Workspace name (optional)."},
                "parameters": {"type": "object", "description": "Template parameter values by name."},
                "preset_id": {"type": "string", "description": "Template version preset id (optional)."},
            },
            required=("template_id",),
        ),
    )

    async def run(self, arguments: Mapping[str, Any]) -> Result:
        template_id = optional_str(arguments, "template_id")
        if template_id is None:
            return {"error": "template_id is required; call list_templates to find one"}
        existing = await self._existing()
        if existing is not None:
            reused = await self._reuse(existing)
            if reused is not None:
                return reused
        client = self.context.backend.client
        workspace = await client.create_workspace(
            name=optional_str(arguments, "name") or f"chat-{uuid.uuid4().hex[:_GENERATED_NAME_HEX_DIGITS]}",
            template_id=template_id,
            preset_id=optional_str(arguments, "preset_id"),
            parameters=string_map(arguments, "parameters"),
        )
        result = await ready_after_build(self.context, workspace, workspace.latest_build)
        return {"created": "error" not in result, "workspace_name": workspace.name, **result}

    async def _existing(self) -> Workspace | None:
        binding = self.context.turn.binding
        if binding is None:
            return None
        try:
            return await self.context.backend.client.workspace(binding.workspace_id)
        except (CoderNotFoundError, CoderWorkspaceDeletedError):
            return None

    async def _reuse(self, workspace: Workspace) -> Result | None:
        """The result for a workspace the chat already has, or None when a new one should be created."""
        build = workspace.latest_build
        if build.transition is Transition.DELETE:
            return None
        if build.job.status.active and build.transition is Transition.START:
            result = await ready_after_build(self.context, workspace, build, fresh=False)
            return {"created": False, "workspace_name": workspace.name, "already_building": True, **result}
        if build.transition is Transition.STOP or build.job.status is not JobStatus.SUCCEEDED:
            return {
                "created": False,
                "workspace_name": workspace.name,
                "error": "The chat's workspace exists but is not running; use start_workspace.",
            }
        if any(agent.status is AgentStatus.CONNECTED for agent in build.agents):
            result = await ready_agent(self.context, workspace, build, fresh=False)
            return {"created": False, "workspace_name": workspace.name, "already_running": True, **result}
        return None  # running, but its agent is dead: make a new one
