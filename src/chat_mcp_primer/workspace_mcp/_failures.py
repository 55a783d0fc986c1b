"""What went wrong with a workspace MCP server, said in a few words an operator can act on, no secrets."""

from __future__ import annotations

import ssl

import httpx2
import mcp_types

from chat_mcp_primer._errors import ChatMcpPrimerError

REFUSED = "connection refused or unreachable"
TLS_UNVERIFIED = "TLS certificate verification failed"

# What the JSON-RPC codes the SDK reports for transport-level faults mean to an operator. Server-sent
# messages are never repeated (they are not ours to vouch for).
_MCP_ERRORS = {
    mcp_types.PARSE_ERROR: "the server's answer was not valid JSON-RPC",
    mcp_types.INVALID_REQUEST: "session terminated or request refused",
    mcp_types.METHOD_NOT_FOUND: "not found",
    mcp_types.INTERNAL_ERROR: "the server answered with an HTTP error",
    mcp_types.CONNECTION_CLOSED: "connection closed",
    mcp_types.REQUEST_TIMEOUT: "request timed out",
}


class SessionError(ChatMcpPrimerError):
    """A workspace MCP session could not be opened or was lost. The text names the server, no secrets."""

    def __init__(self, server: str, reason: str) -> None:
        super().__init__(f"MCP server {server!r}: {reason}")
        self.server = server
        self.reason = reason


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, kind):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def describe_failure(exc: BaseException) -> str:
    """A short, secret-free description of what went wrong, with exception groups flattened."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, SessionError):
        return exc.reason
    if isinstance(exc, httpx2.ConnectError):
        # A certificate that does not verify is not a server that is still starting: say so, and do not
        # have the primer knock on it as if it were refusing connections.
        return TLS_UNVERIFIED if _caused_by(exc, ssl.SSLCertVerificationError) else REFUSED
    if isinstance(exc, httpx2.TimeoutException):
        return "transport timeout"
    if isinstance(exc, httpx2.HTTPError):
        return f"HTTP failure ({type(exc).__name__})"
    code = getattr(getattr(exc, "error", None), "code", None)
    if isinstance(code, int):
        meaning = _MCP_ERRORS.get(code)
        return f"MCP error {code} ({meaning})" if meaning else f"MCP error {code}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return type(exc).__name__
