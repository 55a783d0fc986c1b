"""An async client for the subset of Coder's v2 REST API that chat-mcp-primer speaks."""

from __future__ import annotations

import errno
import json
import socket
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx
import httpx_sse

from chat_mcp_primer.clock import Clock, SystemClock, run_with_timeout, tags
from chat_mcp_primer.workspace.coder._domain import (
    Preset,
    Template,
    TemplateVersion,
    Transition,
    User,
    Workspace,
    WorkspaceBuild,
)
from chat_mcp_primer.workspace.coder._errors import (
    CoderError,
    CoderNotFoundError,
    CoderProtocolError,
    CoderServerError,
    CoderTransportError,
    error_from_body,
)
from chat_mcp_primer.workspace.coder._url import CoderUrl

TOKEN_HEADER = "Coder-Session-Token"
# The cookie Coder reads the session token from first. Its app proxy removes this cookie before a request
# reaches the workspace app, but forwards the header: app requests must carry the token this way.
TOKEN_COOKIE = "coder_session_token"


def path_segment(value: str) -> str:
    """``value`` as one path segment: every reserved character escaped, ``/`` included, so an id or a
    name from the model can never reach another route."""
    return quote(value, safe="")


@dataclass(frozen=True, slots=True)
class CoderSettings:
    """How the Coder client waits and retries. Every wait is on the injected Clock."""

    # One REST call. Coder answers reads in milliseconds; 30 s leaves room for a loaded deployment.
    request_timeout: float = 30.0
    # Tries for 5xx, 429 and transport failures (the first included). Four retries ride out a rolling
    # restart of a Coder replica without hiding a real outage for long.
    max_attempts: int = 5
    # Exponential backoff between those tries: 0.5, 1, 2, 4 s, capped.
    initial_backoff: float = 0.5
    max_backoff: float = 8.0
    # A Retry-After longer than this is not honoured: the call fails instead of stalling a turn.
    max_retry_after: float = 60.0
    # TLS verification is on unless an operator explicitly turns it off.
    verify_tls: bool = True

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("CoderSettings.max_attempts must be at least 1")


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds the server asked us to wait, or None. The HTTP-date form falls back to our own backoff."""
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


class CoderClient:
    """Talks to one Coder deployment with one session token.

    Use as an async context manager (or call `aclose`). 5xx, 429 and transport failures are retried with
    capped exponential backoff that honours ``Retry-After``; every other error is raised at once as a
    `CoderError` subclass. The token is sent in the ``Coder-Session-Token`` header and never appears in
    a repr, an error or a log. A malformed ``url`` is a `ValueError` (see `CoderUrl.parse`); a deployment
    that cannot be reached is a `CoderTransportError` naming ``host:port`` and the cause
    ("cannot reach coder.example.com:443: connection refused (GET /users/me)").
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        clock: Clock | None = None,
        settings: CoderSettings | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        parsed = CoderUrl.parse(url)
        self.url = parsed.url
        self.authority = parsed.authority
        self.settings = settings or CoderSettings()
        self.clock: Clock = clock or SystemClock()
        self._token = token
        self._http = httpx.AsyncClient(
            base_url=f"{self.url}/api/v2",
            headers={TOKEN_HEADER: token, "Accept": "application/json"},
            # Socket-level safety net only: the Clock-driven request_timeout decides.
            timeout=httpx.Timeout(self.settings.request_timeout * 2),
            verify=self.settings.verify_tls,
            follow_redirects=False,
            transport=transport,
        )

    @property
    def token(self) -> str:
        """The session token, for building authenticated requests to the same deployment (app proxy)."""
        return self._token

    def __repr__(self) -> str:
        return f"CoderClient({self.url!r})"

    async def __aenter__(self) -> CoderClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- transport ---------------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str | int] | None = None,
    ) -> Any:
        """One API call, retried as described above; the decoded JSON body of a 2xx answer."""
        settings = self.settings
        backoff = settings.initial_backoff
        for attempt in range(1, settings.max_attempts + 1):
            try:
                response = await run_with_timeout(
                    self.clock,
                    settings.request_timeout,
                    lambda: self._http.request(method, path, json=body, params=params),
                    *tags.CODER_REQUEST,
                )
            except (httpx.TransportError, TimeoutError) as exc:
                if attempt == settings.max_attempts:
                    if isinstance(exc, TimeoutError):
                        cause = f"no answer within {settings.request_timeout:g} s"
                    else:
                        cause = transport_cause(exc)
                    raise CoderTransportError(f"cannot reach {self.authority}: {cause} ({method} {path})") from None
                await self.clock.sleep(backoff, *tags.CODER_RETRY)
                backoff = min(backoff * 2, settings.max_backoff)
                continue
            if response.status_code < 400:
                return self._decode(response, method, path)
            error = error_from_body(response.status_code, self._error_body(response))
            retryable = isinstance(error, CoderServerError)
            if not retryable or attempt == settings.max_attempts:
                raise error
            wait = backoff
            if response.status_code == 429 or "Retry-After" in response.headers:
                hinted = _retry_after(response)
                if hinted is not None:
                    if hinted > settings.max_retry_after:
                        raise error
                    wait = hinted
            await self.clock.sleep(wait, *tags.CODER_RETRY)
            backoff = min(backoff * 2, settings.max_backoff)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _decode(response: httpx.Response, method: str, path: str) -> Any:
        if not response.content:
            return None
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CoderProtocolError(f"{method} {path}: answer is not JSON", status=response.status_code) from None

    @staticmethod
    def _error_body(response: httpx.Response) -> Mapping[str, object] | None:
        try:
            decoded = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        return decoded if isinstance(decoded, dict) else None

    async def _object(self, method: str, path: str, **kwargs: Any) -> Mapping[str, Any]:
        data = await self.request(method, path, **kwargs)
        if not isinstance(data, dict):
            raise CoderProtocolError(f"{method} {path}: expected a JSON object")
        return data

    async def _list(self, path: str, **kwargs: Any) -> list[Mapping[str, Any]]:
        data = await self.request("GET", path, **kwargs)
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise CoderProtocolError(f"GET {path}: expected a JSON list of objects")
        return data

    # -- endpoints ---------------------------------------------------------------------------------

    async def buildinfo(self) -> Mapping[str, Any]:
        return await self._object("GET", "/buildinfo")

    async def applications_host(self) -> str:
        """The wildcard host subdomain apps are served under (``*.apps.example.com``, with the access URL's
        port when it names one), or ``""`` when the deployment has no wildcard access URL."""
        data = await self._object("GET", "/applications/host")
        host = data.get("host", "")
        if not isinstance(host, str):
            raise CoderProtocolError("GET /applications/host: 'host' is not a string")
        return host

    async def me(self) -> User:
        return User.from_json(await self._object("GET", "/users/me"))

    async def organizations(self) -> list[Mapping[str, Any]]:
        return await self._list("/organizations")

    async def templates(self) -> list[Template]:
        return [Template.from_json(item) for item in await self._list("/templates")]

    async def template(self, template_id: str) -> Template:
        return Template.from_json(await self._object("GET", f"/templates/{path_segment(template_id)}"))

    async def template_by_name(self, organization: str, name: str) -> Template:
        path = f"/organizations/{path_segment(organization)}/templates/{path_segment(name)}"
        return Template.from_json(await self._object("GET", path))

    async def template_version(self, version_id: str) -> TemplateVersion:
        return TemplateVersion.from_json(await self._object("GET", f"/templateversions/{path_segment(version_id)}"))

    async def rich_parameters(self, version_id: str) -> list[Mapping[str, Any]]:
        return await self._list(f"/templateversions/{path_segment(version_id)}/rich-parameters")

    async def presets(self, version_id: str) -> list[Preset]:
        return [
            Preset.from_json(item) for item in await self._list(f"/templateversions/{path_segment(version_id)}/presets")
        ]

    async def workspace(self, workspace_id: str) -> Workspace:
        return Workspace.from_json(await self._object("GET", f"/workspaces/{path_segment(workspace_id)}"))

    async def workspaces(self, *terms: str, limit: int | None = None, offset: int | None = None) -> list[Workspace]:
        """Workspaces matching the search ``terms`` (``owner:me``, ``name:dev``, ``template:docker``)."""
        params: dict[str, str | int] = {"q": " ".join(terms)}
        if limit is not None:
            params["limit"] = limit
        if offset is not None:
            params["offset"] = offset
        data = await self._object("GET", "/workspaces", params=params)
        items = data.get("workspaces")
        if not isinstance(items, list):
            raise CoderProtocolError("GET /workspaces: field 'workspaces' is not a list")
        return [Workspace.from_json(item) for item in items if isinstance(item, dict)]

    async def my_workspaces(self, *terms: str) -> list[Workspace]:
        """The caller's own workspaces: always filtered by ``owner:me``, so an admin token lists only its own."""
        return await self.workspaces("owner:me", *terms)

    async def workspace_by_name(self, name: str) -> Workspace:
        """The caller's workspace called ``name``, compared exactly but case-insensitively."""
        wanted = name.casefold()
        matches = [ws for ws in await self.my_workspaces(f"name:{name}") if ws.name.casefold() == wanted]
        if not matches:
            raise CoderNotFoundError(f"No workspace named {name!r}.", status=404)
        if len(matches) > 1:
            raise CoderError(f"Several workspaces are named {name!r} in different cases; use the workspace id.")
        return matches[0]

    async def create_workspace(
        self,
        *,
        name: str,
        template_id: str | None = None,
        template_version_id: str | None = None,
        preset_id: str | None = None,
        parameters: Mapping[str, str] | None = None,
        user: str = "me",
    ) -> Workspace:
        if (template_id is None) == (template_version_id is None):
            raise ValueError("give exactly one of template_id and template_version_id")
        body: dict[str, Any] = {"name": name}
        if template_id is not None:
            body["template_id"] = template_id
        else:
            body["template_version_id"] = template_version_id
        if preset_id is not None:
            body["template_version_preset_id"] = preset_id
        if parameters:
            body["rich_parameter_values"] = [{"name": k, "value": v} for k, v in parameters.items()]
        return Workspace.from_json(await self._object("POST", f"/users/{path_segment(user)}/workspaces", body=body))

    async def create_build(
        self,
        workspace_id: str,
        transition: Transition,
        *,
        template_version_id: str | None = None,
        parameters: Mapping[str, str] | None = None,
        reason: str | None = None,
    ) -> WorkspaceBuild:
        """Start a build. Without ``template_version_id`` it reuses the previous build's version.

        Raises `BuildActiveError` (409) while another build of the workspace is active.
        """
        body: dict[str, Any] = {"transition": transition.value}
        if template_version_id is not None:
            body["template_version_id"] = template_version_id
        if parameters:
            body["rich_parameter_values"] = [{"name": k, "value": v} for k, v in parameters.items()]
        if reason is not None:
            body["reason"] = reason
        path = f"/workspaces/{path_segment(workspace_id)}/builds"
        return WorkspaceBuild.from_json(await self._object("POST", path, body=body))

    async def build(self, build_id: str) -> WorkspaceBuild:
        return WorkspaceBuild.from_json(await self._object("GET", f"/workspacebuilds/{path_segment(build_id)}"))

    async def cancel_build(self, build_id: str) -> None:
        await self.request("PATCH", f"/workspacebuilds/{path_segment(build_id)}/cancel")

    async def watch(self, workspace_id: str) -> AsyncIterator[Workspace]:
        """The workspace each time it changes, from the server-sent event stream, until the stream ends.

        ``ping`` events are skipped; an ``error`` event is raised as the `CoderError` it carries.
        """
        path = f"/workspaces/{path_segment(workspace_id)}/watch"
        try:
            async with httpx_sse.aconnect_sse(self._http, "GET", path, timeout=None) as source:
                response = source.response
                if response.status_code >= 400:
                    await response.aread()
                    raise error_from_body(response.status_code, self._error_body(response))
                async for event in source.aiter_sse():
                    if event.event == "data" and event.data:
                        yield Workspace.from_json(_json_object(event.data))
                    elif event.event == "error":
                        raise error_from_body(500, _json_object(event.data) if event.data else None)
        except httpx.TransportError as exc:
            raise CoderTransportError(
                f"watch {workspace_id}: stream from {self.authority} broke ({transport_cause(exc)})"
            ) from None


def _json_object(text: str) -> Mapping[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise CoderProtocolError("watch: an event is not JSON") from None
    if not isinstance(data, dict):
        raise CoderProtocolError("watch: an event is not a JSON object")
    return data


def transport_cause(exc: BaseException) -> str:
    """What an httpx transport failure came down to, in words an operator acts on: "connection refused",
    "host not found", "TLS certificate verification failed", the OS's own words for other socket errors."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]  # the causes, and the members of groups (trio's connect errors)
    while pending:
        cause = pending.pop(0)
        if id(cause) in seen:
            continue
        seen.add(id(cause))
        if isinstance(cause, BaseExceptionGroup):
            pending.extend(cause.exceptions)
        if isinstance(cause, ssl.SSLCertVerificationError):
            return "TLS certificate verification failed"
        if isinstance(cause, ssl.SSLError):
            return f"TLS handshake failed ({cause.reason or type(cause).__name__})"
        if isinstance(cause, socket.gaierror):
            return "host not found"
        if isinstance(cause, OSError) and cause.errno is not None:
            if cause.errno == errno.ECONNREFUSED:
                return "connection refused"
            return (cause.strerror or errno.errorcode.get(cause.errno, str(cause.errno))).lower()
        link = cause.__cause__ or cause.__context__
        if link is not None:
            pending.append(link)
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return "the connection broke"
    return f"transport failure ({type(exc).__name__})"
