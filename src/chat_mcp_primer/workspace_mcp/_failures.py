"""What went wrong with a workspace MCP server, said in a few words an operator can act on, no secrets."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import httpx2
import mcp_types

from chat_mcp_primer._errors import ChatMcpPrimerError

REFUSED = "connection refused or unreachable"
TLS_UNVERIFIED = "TLS certificate verification failed"
LOGIN_REDIRECT = "the app proxy rejected the session token (redirected to login)"


@dataclass(frozen=True, slots=True)
class ProxyAnswer:
    """What an error page of the app proxy in front of a server means, and whether asking again can help."""

    reason: str
    worth_retrying: bool


# The token is missing, invalid or expired: Coder sends a browser to its login page. It stays so until
# someone signs in again, so nothing in this turn can mend it.
_LOGIN = ProxyAnswer(LOGIN_REDIRECT, worth_retrying=False)
# Coder's app proxy answers these as HTML pages, which an MCP server never sends; by status, as Coder
# words them. Worth retrying only what time mends: a workspace that is starting, an agent connecting.
_PROXY_PAGES = {
    400: ProxyAnswer("the app proxy says the workspace is offline (400 Workspace Offline)", worth_retrying=True),
    403: ProxyAnswer(
        "the app proxy refused the request (403): path-based apps are disabled on this deployment; "
        "serve the MCP app as a subdomain app (subdomain = true)",
        worth_retrying=False,
    ),
    404: ProxyAnswer(
        "the app proxy found no such application for this user (404 Application Not Found)", worth_retrying=False
    ),
    502: ProxyAnswer(
        "the app proxy could not reach the app (502): its agent is not connected or its server is not up yet",
        worth_retrying=True,
    ),
}
# The server itself refused the host the app proxy passes on (the SDK's DNS-rebinding protection answers
# 421 to any Host but a loopback name): it must be told the deployment's host names.
_MISDIRECTED = 421
_HOST_REFUSED = ProxyAnswer(
    "the server refused the Host header the app proxy passes on (421): allow the deployment's app host "
    "names in its DNS-rebinding protection",
    worth_retrying=False,
)
_HTML = "text/html"
_SEE_OTHER = 303
# Where the app proxy sends a request without a valid session token: a path-based app to the login page,
# a subdomain app to the deployment's app sign-in (on the access URL, another origin than the app's).
_SIGN_IN_PATHS = frozenset({"/login", "/api/v2/applications/auth-redirect"})


def proxy_answer(response: httpx2.Response) -> ProxyAnswer | None:
    """What ``response`` says when it is the app proxy's answer rather than the server's, else None.

    A redirect to sign in (303 See Other, or any redirect to the login page or the app sign-in), an HTML
    error page of a status the proxy uses, or the server's own refusal of the forwarded host (421). Only
    headers are read: the body is left to the response guard.
    """
    if response.has_redirect_location:
        location = response.request.url.join(response.headers["Location"])
        return _LOGIN if response.status_code == _SEE_OTHER or location.path in _SIGN_IN_PATHS else None
    if response.status_code == _MISDIRECTED:
        return _HOST_REFUSED
    if not response.headers.get("Content-Type", "").lower().startswith(_HTML):
        return None
    return _PROXY_PAGES.get(response.status_code)


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

    def __init__(self, server: str, reason: str, *, worth_retrying: bool = True) -> None:
        super().__init__(f"MCP server {server!r}: {reason}")
        self.server = server
        self.reason = reason
        # False when asking again in this turn cannot help (the app proxy refused the session or the app).
        self.worth_retrying = worth_retrying


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, kind):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def worth_retrying(exc: BaseException) -> bool:
    """False when the failure is one asking again in this turn cannot mend (a `SessionError` that says so)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return not isinstance(exc, SessionError) or exc.worth_retrying


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
