"""Session-token authentication as coderd's ``ExtractAPIKey`` does it.

The token comes from the ``coder_session_token`` cookie, else the query parameter of that name, else the
``Coder-Session-Token`` header; an app request (`app_session_token`) may also carry it in the app proxy's
own cookie. Missing and invalid tokens are 401 with the same message and different details (the app proxy
turns them into a redirect to the login page). The token is never logged or echoed back.
"""

from __future__ import annotations

import hmac

from starlette.requests import HTTPConnection

from chat_mcp_primer.testing._fake_coder._records import TOKEN_ID_LENGTH, TOKEN_SECRET_LENGTH, UserRecord
from chat_mcp_primer.testing._fake_coder._state import CoderState
from chat_mcp_primer.testing._fake_coder._wire import ApiError, go_quote

SESSION_TOKEN_HEADER = "Coder-Session-Token"
SESSION_TOKEN_COOKIE = "coder_session_token"
# The cookie the path-based app proxy sets after a login redirect (codersdk.PathAppSessionTokenCookie).
PATH_APP_SESSION_TOKEN_COOKIE = "coder_path_app_session_token"
# Every cookie of Coder's own that its app proxy removes before a request reaches the app
# (`StripCoderCookies`): the session token, the OAuth2 login state, and the app proxy's own tokens.
CODER_COOKIES = frozenset(
    {
        SESSION_TOKEN_COOKIE,
        "oauth_state",
        "oauth_redirect",
        PATH_APP_SESSION_TOKEN_COOKIE,
        "coder_subdomain_app_session_token",
        "coder_signed_app_token",
    }
)
SIGNED_OUT_MESSAGE = "You are signed out or your session has expired. Please sign in again to continue."
MISSING_TOKEN_DETAIL = f"Cookie {go_quote(SESSION_TOKEN_COOKIE)} or query parameter must be provided."
INVALID_TOKEN_DETAIL = "API key is invalid."
_TOKEN_PARTS = 2


def session_token(connection: HTTPConnection) -> str:
    return (
        connection.cookies.get(SESSION_TOKEN_COOKIE)
        or connection.query_params.get(SESSION_TOKEN_COOKIE)
        or connection.headers.get(SESSION_TOKEN_HEADER)
        or ""
    )


def app_session_token(connection: HTTPConnection) -> str:
    """The token of an app request, as `AppConnectSessionTokenFromRequest` finds it: the API's places
    first, then the path-based app proxy's own cookie."""
    return session_token(connection) or connection.cookies.get(PATH_APP_SESSION_TOKEN_COOKIE) or ""


def authenticate(state: CoderState, token: str) -> UserRecord:
    """The user the token belongs to, or Coder's 401."""
    if not token:
        raise ApiError(401, SIGNED_OUT_MESSAGE, detail=MISSING_TOKEN_DETAIL)
    parts = token.split("-")
    if len(parts) != _TOKEN_PARTS:
        detail = f"Invalid API key format: incorrect amount of API key parts, expected 2 got {len(parts)}"
        raise ApiError(401, SIGNED_OUT_MESSAGE, detail=detail)
    key_id, secret = parts
    if len(key_id) != TOKEN_ID_LENGTH:
        detail = f"Invalid API key format: invalid API key ID length, expected {TOKEN_ID_LENGTH} got {len(key_id)}"
        raise ApiError(401, SIGNED_OUT_MESSAGE, detail=detail)
    if len(secret) != TOKEN_SECRET_LENGTH:
        detail = (
            f"Invalid API key format: invalid API key secret length, expected {TOKEN_SECRET_LENGTH} got {len(secret)}"
        )
        raise ApiError(401, SIGNED_OUT_MESSAGE, detail=detail)
    with state.lock:
        record = state.tokens.get(key_id)
        if record is None or record.revoked:
            raise ApiError(401, SIGNED_OUT_MESSAGE, detail=INVALID_TOKEN_DETAIL)
        if not hmac.compare_digest(record.secret, secret):
            raise ApiError(401, SIGNED_OUT_MESSAGE, detail="API key secret is invalid.")
        return state.users[record.user_id]
