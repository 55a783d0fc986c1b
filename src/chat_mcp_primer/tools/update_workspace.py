"""``update_workspace``: move the chat's workspace onto a template version, restarting it, and wait until ready."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chat_mcp_primer.tools import descriptions as text
from chat_mcp_primer.tools._base import LifecycleTool, chat_spec, optional_str, schema
from chat_mcp_primer.tools._render import Result


class UpdateWorkspace(LifecycleTool):
    spec = chat_spec(
        "update_workspace",
        schema({"template_version_id": {"type": "string", "description": text.TEMPLATE_VERSION_ID}}),
    )

    async def run(self, arguments: Mapping[str, Any]) -> Result:
        version_id = optional_str(arguments, "template_version_id")
        lifecycle = self.context.lifecycle
        return await self.on_chat_workspace(
            lambda workspace_id: lifecycle.update(workspace_id, version_id, observer=self.observer)
        )
