from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any

import mcp_types

from chat_mcp_primer.clock import Clock, run_with_timeout, tags
from chat_mcp_primer.model import Attachment, ToolResult, ToolSpec
from chat_mcp_primer.workspace_mcp._failures import describe_failure
from chat_mcp_primer.workspace_mcp._listing import RemoteTool
from chat_mcp_primer.workspace_mcp._session import McpSession

# A call refused because the server ended the session is made once more on a new session; never more,
# so a server that keeps ending sessions cannot hold a call in a loop.
_CALL_TRIES = 2


def _error_code(exc: BaseException) -> int | None:
    """The JSON-RPC code of an MCP error, or None. INVALID_REQUEST is how the SDK reports a 404 for the
    session (older protocol era): the server ended the session and never saw the call."""
    code = getattr(getattr(exc, "error", None), "code", None)
    return code if isinstance(code, int) else None


def _embedded(resource: mcp_types.TextResourceContents | mcp_types.BlobResourceContents) -> str:
    """An embedded resource as text. A text resource is often the whole answer (a file's content, a
    report), so its text is kept after a line naming it; the chat loop bounds it with the rest of the
    result. Binary contents are not text a model can read: a placeholder names them and their size."""
    if isinstance(resource, mcp_types.TextResourceContents):
        return f"[embedded resource: {resource.uri}]\n{resource.text}"
    size = len(resource.blob) * 3 // 4  # from the base64 text, without decoding it
    kind = resource.mime_type or "binary data"
    return f"[embedded resource: {resource.uri} ({kind}, about {size:,} bytes, not shown)]"


def convert_result(result: mcp_types.CallToolResult) -> ToolResult:
    """MCP content as the model sees it: text parts joined by newlines, images and audio as attachments,
    text resources as their text after a line naming them, binary resources and resource links as short
    bracketed placeholders; ``is_error`` is kept. Sizes are bounded later, by the chat loop."""
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
            texts.append(_embedded(part.resource))
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
        """Call the tool through the agent's session. A session the server says it terminated is redialled
        and the call made once more (the server refused it unseen); any other broken session is closed so
        the next call dials afresh, but the call is not repeated (it may have run)."""
        for attempt in range(_CALL_TRIES):
            try:
                session = await self._open_session()
            except Exception as exc:
                return ToolResult.error(
                    f"workspace connection failed: {describe_failure(exc)}. "
                    "The workspace agent may still be starting; try again shortly."
                )
            call_remote = functools.partial(session.call_tool, self.remote.name, dict(arguments))
            try:
                result = await run_with_timeout(self._clock, self._call_timeout, call_remote, *tags.MCP_CALL)
            except TimeoutError:
                return ToolResult.error(
                    f"workspace tool {self.spec.name!r} did not answer within {self._call_timeout:g} s"
                )
            except Exception as exc:
                if _error_code(exc) != mcp_types.INVALID_PARAMS:  # not the arguments: the session is suspect
                    session.close()
                if _error_code(exc) == mcp_types.INVALID_REQUEST and attempt + 1 < _CALL_TRIES:
                    continue
                return ToolResult.error(f"workspace tool {self.spec.name!r} failed: {describe_failure(exc)}")
            return convert_result(result)
        raise AssertionError("unreachable")  # pragma: no cover

    def __repr__(self) -> str:
        return f"WorkspaceMcpTool({self.spec.name!r} -> {self.remote.server}/{self.remote.name})"
