"""``restart_workspace``: stop then start the chat's workspace on the same version, and wait until it is ready."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chat_mcp_primer.tools._base import LifecycleTool, chat_spec
from chat_mcp_primer.tools._render import Result


class RestartWorkspace(LifecycleTool):
    spec = chat_spec("restart_workspace")

    async def run(self, arguments: Mapping[str, Any]) -> Result:
        lifecycle = self.context.lifecycle
        return await self.on_chat_workspace(
            lambda workspace_id: lifecycle.restart(workspace_id, observer=self.observer)
        )
