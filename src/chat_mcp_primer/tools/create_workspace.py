"""``create_workspace``: create a workspace for the chat (idempotent) and wait until its agent is ready."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from chat_mcp_primer._errors import ToolArgumentError
from chat_mcp_primer.tools import descriptions as text
from chat_mcp_primer.tools._base import LifecycleTool, chat_spec, optional_str, schema, string_map
from chat_mcp_primer.tools._render import Result, render_outcome
from chat_mcp_primer.tools.descriptions import CHAT
from chat_mcp_primer.workspace.coder import CreateRequest

# Coder names: at most 32 characters; "chat-" and 12 hex digits leave room and stay unique in practice.
_GENERATED_NAME_HEX_DIGITS = 12


class CreateWorkspace(LifecycleTool):
    spec = chat_spec(
        "create_workspace",
        schema(
            {
                "template_id": {"type": "string", "description": text.TEMPLATE_ID},
                "name": {"type": "string", "description": f"{text.WORKSPACE_NAME} Optional."},
                "parameters": {"type": "object", "description": text.PARAMETERS},
                "preset_id": {"type": "string", "description": f"{text.PRESET_ID} Optional."},
            },
            required=("template_id",),
        ),
    )

    async def run(self, arguments: Mapping[str, Any]) -> Result:
        template_id = optional_str(arguments, "template_id")
        if template_id is None:
            raise ToolArgumentError("template_id is required; call list_templates to find one")
        request = CreateRequest(
            name=optional_str(arguments, "name") or f"chat-{uuid.uuid4().hex[:_GENERATED_NAME_HEX_DIGITS]}",
            template_id=template_id,
            parameters=string_map(arguments, "parameters"),
            preset_id=optional_str(arguments, "preset_id"),
        )
        binding = self.context.turn.binding
        reuse = binding.workspace_id if binding is not None else None
        outcome = await self.context.lifecycle.create(request, reuse=reuse, observer=self.observer)
        return render_outcome(outcome, CHAT)
