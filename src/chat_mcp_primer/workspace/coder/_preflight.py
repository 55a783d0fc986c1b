"""One look at a deployment before relying on it: is it Coder, and does it take the session token?"""

from __future__ import annotations

from dataclasses import dataclass

from chat_mcp_primer.workspace.coder._client import CoderClient
from chat_mcp_primer.workspace.coder._errors import (
    CoderAuthError,
    CoderError,
    CoderProtocolError,
    CoderServerError,
    CoderTransportError,
)


@dataclass(frozen=True, slots=True)
class Deployment:
    """What the check learnt: the deployment's version and the user the token belongs to."""

    authority: str
    version: str
    username: str


async def check_deployment(client: CoderClient) -> Deployment:
    """Ask the deployment who it is (``GET /buildinfo``, public) and who the token is (``GET /users/me``).

    Raises, with a message naming the deployment's ``host:port`` and no secret:

    - `CoderTransportError` when it cannot be reached (after the client's retries);
    - `CoderProtocolError` when it answers but is not a Coder deployment (no JSON build info);
    - `CoderAuthError` when it rejects the session token;
    - `CoderServerError` when it keeps failing (5xx, 429), and any other `CoderError` from ``/users/me``.
    """
    where = client.authority
    try:
        info = await client.buildinfo()
    except (CoderTransportError, CoderServerError):
        raise
    except CoderError as exc:  # a 404 page, HTML, a JSON list: some other web server
        answered = "with something that is not Coder's build info"
        if not isinstance(exc, CoderProtocolError) and exc.status is not None:
            answered = f"HTTP {exc.status}"
        raise CoderProtocolError(
            f"{where} is not a Coder deployment (GET /api/v2/buildinfo answered {answered})", status=exc.status
        ) from None
    version = info.get("version")
    if not isinstance(version, str) or not version:
        raise CoderProtocolError(f"{where} is not a Coder deployment (its build info has no version)")
    try:
        me = await client.me()
    except CoderAuthError:
        raise CoderAuthError(f"{where} rejected the session token (HTTP 401)", status=401) from None
    return Deployment(authority=where, version=version, username=me.username)
