"""``list_templates``: the templates the model may create a workspace from."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chat_mcp_primer.tools._base import LifecycleTool, chat_spec
from chat_mcp_primer.tools._render import Result, render_templates


class ListTemplates(LifecycleTool):
    spec = chat_spec("list_templates")

    async def run(self, arguments: Mapping[str, Any]) -> Result:
        return render_templates(await self.context.backend.client.templates())
