"""``stop_workspace``: stop the chat's workspace (idempotent)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chat_mcp_primer.tools._base import LifecycleTool, chat_spec
from chat_mcp_primer.tools._render import Result


class StopWorkspace(LifecycleTool):
    spec = chat_spec("stop_workspace")

    async def run(self, arguments: Mapping[str, Any]) -> Result:
        lifecycle = self.context.lifecycle
        return await self.on_chat_workspace(lambda workspace_id: lifecycle.stop(workspace_id, observer=self.observer))
