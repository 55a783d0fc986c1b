"""``list_templates``: the templates the model may create a workspace from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chat_mcp_primer.model import ToolSpec
from chat_mcp_primer.tools._base import LifecycleTool, schema
from chat_mcp_primer.workspace.coder import Result, Template


class ListTemplates(LifecycleTool):
    spec = ToolSpec(
        name="list_templates",
        description="List the workspace templates available to create a workspace from (id, name, description).",
        input_schema=schema(),
    )

    async def run(self, arguments: Mapping[str, Any]) -> Result:
        return describe_templates(await self.context.backend.client.templates())


def describe_templates(templates: Sequence[Template]) -> Result:
    """The templates a workspace may be created from, as tools answer: deprecated ones left out."""
    return {
        "templates": [
            {
                "id": template.id,
                "name": template.name,
                "display_name": template.display_name,
                "description": template.description,
                "active_version_id": template.active_version_id,
            }
            for template in templates
            if not template.deprecated
        ]
    }
