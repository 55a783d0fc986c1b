from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any

import mcp_types

from chat_mcp_primer.clock import Clock, run_with_timeout
from chat_mcp_primer.model import Attachment, ToolResult, ToolSpec
from chat_mcp_primer.workspace_mcp._listing import RemoteTool
from chat_mcp_primer.workspace_mcp._sessions import McpSession, describe_failure

CALL_TAGS = ("workspace-mcp", "call")


def convert_result(result: mcp_types.CallToolResult) -> ToolResult:
    """MCP content as the model sees it: text parts joined by newlines, images and audio as attachments,
    resources as short bracketed placeholders; ``is_error`` is kept."""
    texts: list[str] = []
    attachments: list[Attachment] = []
    for part in result.content:
        if isinstance(part, mcp_types.TextContent):
            texts.append(part.text)
        elif isinstance(part, mcp_types.ImageContent | mcp_types.AudioContent):
            try:
                attachments.append(Attachment(mime_type=part.mime_type, data=base64.b64decode(part.data)))
            except (binascii.Error, ValueError):
                texts.append(f"[{part.type}: undecodable data]")
        elif isinstance(part, mcp_types.EmbeddedResource):
            texts.append(f"[embedded resource: {part.resource.uri}]")
        elif isinstance(part, mcp_types.ResourceLink):
            texts.append(f"[resource link: {part.uri}]")
        else:
            texts.append(f"[{getattr(part, 'type', 'unknown')} content]")
    return ToolResult(text="\n".join(texts), is_error=bool(result.is_error), attachments=tuple(attachments))


class WorkspaceMcpTool:
    """A workspace MCP tool offered to the model under its exposed name, calling the original name."""

    __slots__ = ("_call_timeout", "_clock", "_open_session", "remote", "spec")

    def __init__(
        self,
        exposed_name: str,
        remote: RemoteTool,
        open_session: Callable[[], Awaitable[McpSession]],
        clock: Clock,
        call_timeout: float,
    ) -> None:
        self.remote = remote
        self.spec = ToolSpec(
            name=exposed_name,
            description=remote.description,
            input_schema=MappingProxyType(dict(remote.input_schema)),
        )
        self._open_session = open_session
        self._clock = clock
        self._call_timeout = call_timeout

    async def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        try:
            session = await self._open_session()
        except Exception as exc:
            return ToolResult.error(
                f"workspace connection failed: {describe_failure(exc)}. "
                "The workspace agent may still be starting; try again shortly."
            )

        async def call_remote() -> mcp_types.CallToolResult:
            return await session.call_tool(self.remote.name, dict(arguments))

        try:
            result = await run_with_timeout(self._clock, self._call_timeout, call_remote, *CALL_TAGS)
        except TimeoutError:
            return ToolResult.error(f"workspace tool {self.spec.name!r} did not answer within {self._call_timeout:g} s")
        except Exception as exc:
            return ToolResult.error(f"workspace tool {self.spec.name!r} failed: {describe_failure(exc)}")
        return convert_result(result)

    def __repr__(self) -> str:
        return f"WorkspaceMcpTool({self.spec.name!r} -> {self.remote.server}/{self.remote.name})"
