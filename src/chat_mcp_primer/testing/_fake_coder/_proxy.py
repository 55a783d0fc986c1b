"""Coder's app proxy: path-based apps at ``/@{owner}/{workspace}.{agent}/apps/{slug}/{path}``, and
subdomain apps at ``{slug}--{agent}--{workspace}--{owner}`` under the wildcard access URL, at ``/{path}``.

Requests authenticate with the same session token as the API, found where Coder looks for it
(`app_session_token`). A request without a valid one is sent (303) to sign in, as Coder does for a
browser: a path-based app to the deployment's login page, a subdomain app to the app sign-in on the access
URL (``/api/v2/applications/auth-redirect``); the fake shares no app publicly. What reaches the app is
the request with Coder's own cookies removed and nothing else: the ``Host`` as the client named it, and a
``Coder-Session-Token`` header or a token in the query string as it came, as Coder's `proxyWorkspaceApp`
does, so a client that sends the token that way hands it to the app. The agent is looked up in the
workspace's latest build (``.{agent}`` may be left out of a path when there is only one). An MCP app whose
server is up is served in-process (or forwarded to its ``upstream``). Proxy errors are HTML pages, as Coder
renders them:

- 403 for every path-based app when the deployment disables them; 404 for ``@me`` in a path;
- 404 "Application Not Found" for another user's app: path-based apps are owner-only (site owners
  too, unless the deployment allows them), subdomain apps follow their sharing level (site owners may
  reach owner-shared ones, as Coder's RBAC lets them);
- 400 "Workspace Offline" when the latest build stops or deletes the workspace;
- 502 "Application Unavailable" while the agent is not connected, and 502 "Bad Gateway" when the app
  has not come up (its server cold-starting) or has nothing behind it, as Coder when it cannot dial it.

Coder's proxy serves an app at its path whether or not the app is a subdomain app.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from chat_mcp_primer.testing._fake_coder._auth import CODER_COOKIES, app_session_token, authenticate
from chat_mcp_primer.testing._fake_coder._config import FakeMcpServer
from chat_mcp_primer.testing._fake_coder._lifecycle import (
    agent_view,
    job_view,
    mcp_server_up_at,
    visible_resources,
)
from chat_mcp_primer.testing._fake_coder._mcp_host import McpHost, McpKey, mcp_server_app
from chat_mcp_primer.testing._fake_coder._state import CoderState
from chat_mcp_primer.testing._fake_coder._subdomain import SubdomainApp
from chat_mcp_primer.testing._fake_coder._upstream import UpstreamDown, forward
from chat_mcp_primer.testing._fake_coder._wire import ApiError

PROXY_PATH = "/@{owner}/{target}/apps/{slug}/{path:path}"
PROXY_ROUTE = "/@{owner}/{workspace_and_agent}/apps/{slug}/{path}"
# How requests to subdomain apps are counted (`FakeCoder.requests`).
SUBDOMAIN_ROUTE = "{slug}--{agent}--{workspace}--{owner}.{wildcard}/{path}"
_APP_ROOT_PATH = "/@{owner}/{target}/apps/{slug}"
# Where Coder sends a browser whose request to a path-based app carries no valid session token.
LOGIN_PATH = "/login"
# Where it sends one whose request to a subdomain app carries none: the app sign-in, on the access URL.
APP_SIGN_IN_PATH = "/api/v2/applications/auth-redirect"
# Starlette routing keys of the outer app, not meant for the app behind the proxy.
_OUTER_ROUTING_KEYS = ("path_params", "endpoint", "route", "router")


class _ProxyError(Exception):
    def __init__(self, status: int, title: str, description: str) -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.description = description

    def response(self) -> Response:
        page = (
            f"<!doctype html><html><head><title>{html.escape(self.title)}</title></head>"
            f"<body><h1>{self.status} - {html.escape(self.title)}</h1>"
            f"<p>{html.escape(self.description)}</p></body></html>"
        )
        return HTMLResponse(page, status_code=self.status)


def _app_down() -> _ProxyError:
    return _ProxyError(
        502, "Bad Gateway", "Failed to proxy request to application: dial tcp 127.0.0.1: connect: connection refused"
    )


_PATH_APPS_DISABLED = _ProxyError(
    403, "Forbidden", "Path-based applications are disabled on this Coder deployment by the administrator."
)
_ME_REFUSED = _ProxyError(404, "Not Found", "Applications must be accessed with the full username, not @me.")
_NOT_YOURS = _ProxyError(
    404,
    "Application Not Found",
    "The application or workspace you are trying to access does not exist or you do not have permission to access it.",
)
_OFFLINE = _ProxyError(
    400, "Workspace Offline", "Last workspace transition was to stop. Start the workspace and try again."
)
_STOPPED_TRANSITIONS = frozenset({"stop", "delete"})


def _agent_unavailable(status: str) -> _ProxyError:
    return _ProxyError(502, "Application Unavailable", f'Agent state is "{status}", not "connected"')


@dataclass(frozen=True, slots=True)
class _Target:
    key: McpKey
    server: FakeMcpServer


@dataclass(frozen=True, slots=True)
class _AppRequest:
    """The app a request names, however it names it."""

    subdomain: bool
    owner: str
    workspace: str
    agent: str  # "" for the workspace's only agent (a path may leave it out)
    slug: str
    # Where the app is mounted: its path prefix, or nothing on a host of its own.
    root_path: str


class AppProxy:
    """The ASGI endpoint behind `PROXY_PATH`, and `subdomain` for requests to the wildcard hosts."""

    def __init__(self, state: CoderState, host: McpHost) -> None:
        self._state = state
        self._host = host

    def routes(self) -> list[Route]:
        return [
            Route(PROXY_PATH, self),
            Route(_APP_ROOT_PATH, _add_trailing_slash),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = scope["path_params"]
        with self._state.lock:
            self._state.requests[f"{scope['method']} {PROXY_ROUTE}"] += 1
            paths_disabled = self._state.disable_path_apps
        # Coder's order: the deployment's switch, then the URL's form, then the session, then the app.
        if paths_disabled or params["owner"] == "me":
            await (_PATH_APPS_DISABLED if paths_disabled else _ME_REFUSED).response()(scope, receive, send)
            return
        workspace, _, agent = params["target"].partition(".")
        prefix = _APP_ROOT_PATH.format(owner=params["owner"], target=params["target"], slug=params["slug"])
        app = _AppRequest(
            subdomain=False,
            owner=params["owner"],
            workspace=workspace,
            agent=agent,
            slug=params["slug"],
            root_path=scope.get("root_path", "") + prefix,
        )
        await self._serve(app, scope, receive, send)

    async def subdomain(self, scope: Scope, receive: Receive, send: Send, label: str) -> None:
        """A request to ``label`` under the wildcard access URL: the subdomain app it names."""
        with self._state.lock:
            self._state.requests[f"{scope['method']} {SUBDOMAIN_ROUTE}"] += 1
        try:
            named = SubdomainApp.parse(label)
        except ValueError as exc:
            error = _ProxyError(400, "Invalid Application URL", f"Could not parse subdomain application URL: {exc}")
            await error.response()(scope, receive, send)
            return
        app = _AppRequest(
            subdomain=True,
            owner=named.username,
            workspace=named.workspace,
            agent=named.agent,
            slug=named.slug,
            root_path=scope.get("root_path", ""),
        )
        await self._serve(app, scope, receive, send)

    async def _serve(self, app: _AppRequest, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            viewer = authenticate(self._state, app_session_token(request))
        except ApiError as error:
            await _to_sign_in(request, app, error.message)(scope, receive, send)
            return
        try:
            target = self._resolve(viewer.id, app)
        except _ProxyError as error:
            await error.response()(scope, receive, send)
            return
        forwarded = _forwarded_scope(scope, app.root_path)
        if target.server.upstream is not None:
            try:
                await forward(target.server.upstream, forwarded, receive, send)
            except UpstreamDown:
                await _app_down().response()(scope, receive, send)
            return
        served = await self._host.app(target.key, lambda: mcp_server_app(self._state, target.key, target.server))
        await served(forwarded, receive, send)

    def _resolve(self, viewer_id: str, app: _AppRequest) -> _Target:
        state = self._state
        with state.lock:
            viewer = state.users[viewer_id]
            owner = state.user_by_username(app.owner)
            workspace = None
            if owner is not None:
                workspace = state.workspace_by_name(owner, app.workspace, include_deleted=False)
            if workspace is None or not state.can_read(viewer, workspace):
                raise _ProxyError(404, "Not Found", "The workspace you are looking for does not exist.")
            # Path-based apps are owner-only whatever their sharing level: they share the deployment's
            # origin, so another user's app could act with the visitor's cookies. A subdomain app is on an
            # origin of its own: a site owner may reach it (the fake shares every app with its owner only).
            site_owner_allowed = app.subdomain or state.path_app_site_owner_access
            if workspace.owner_id != viewer.id and not (viewer.admin and site_owner_allowed):
                raise _NOT_YOURS
            now = state.now()
            build = workspace.latest_build
            if build.transition in _STOPPED_TRANSITIONS:
                raise _OFFLINE
            job = job_view(build.job, now)
            agents = [agent for resource in visible_resources(build, job) for agent in resource.agents]
            if app.agent:
                agents = [agent for agent in agents if agent.config.name == app.agent]
            elif len(agents) > 1:
                raise _ProxyError(400, "Bad Request", "More than one agent exists, but no agent specified in the URL.")
            if not agents:
                raise _ProxyError(404, "Not Found", f"Agent {app.agent or '(any)'!r} not found in the workspace.")
            agent = agents[0]
            server = next((s for s in agent.config.mcp_servers if s.slug == app.slug), None)
            known = server is not None or any(other.slug == app.slug for other in agent.config.apps)
            if not known:
                raise _ProxyError(404, "Application Not Found", f"No application with slug {app.slug!r} on this agent.")
            view = agent_view(agent.config, job, now)
            if view.status != "connected":
                raise _agent_unavailable(view.status)
            up_at = mcp_server_up_at(server, view) if server is not None else math.inf
            if server is None or now < up_at:
                raise _app_down()
            return _Target(key=(workspace.id, agent.id, app.slug), server=server)


def _forwarded_scope(scope: Scope, root_path: str) -> Scope:
    """The request as the app sees it: mounted under ``root_path``, without Coder's cookies.

    Only the ``Cookie`` headers are rewritten (Coder's `StripCoderCookies`); every other header and the
    query string pass as they came, a ``Coder-Session-Token`` header included."""
    forwarded = {key: value for key, value in scope.items() if key not in _OUTER_ROUTING_KEYS}
    forwarded["root_path"] = root_path
    headers = []
    for name, value in scope["headers"]:
        if name.lower() == b"cookie":
            value = _without_coder_cookies(value)
            if not value:
                continue
        headers.append((name, value))
    forwarded["headers"] = headers
    return forwarded


def _without_coder_cookies(value: bytes) -> bytes:
    kept = [
        part.strip()
        for part in value.decode("latin-1").split(";")
        if part.strip() and part.strip().split("=", 1)[0] not in CODER_COOKIES
    ]
    return "; ".join(kept).encode("latin-1")


def _to_sign_in(request: Request, app: _AppRequest, message: str) -> Response:
    """Coder's answer to an app request without a valid session token: 303 See Other to sign in. A
    path-based app goes to the login page with its path to come back to; a subdomain app, on a host the
    session cookie does not cover, to the app sign-in on the access URL with its whole URL to come back to.
    Go's `http.Redirect` writes a short HTML body."""
    if app.subdomain:
        query = urlencode({"redirect_uri": str(request.url)})
        location = f"{_access_url(request.scope)}{APP_SIGN_IN_PATH}?{query}"
    else:
        query = urlencode({"message": message, "redirect": request.url.path})
        location = f"{request.base_url}{LOGIN_PATH.lstrip('/')}?{query}"
    page = f'<a href="{html.escape(location)}">See Other</a>.\n'
    return HTMLResponse(page, status_code=303, headers={"Location": location})


def _access_url(scope: Scope) -> str:
    """The deployment's access URL: the address the fake is served on (a subdomain app's request names
    its own host instead)."""
    host, port = scope["server"]
    return f"{scope['scheme']}://{host}:{port}"


async def _add_trailing_slash(request: Request) -> Response:
    """Coder redirects ``.../apps/{slug}`` to ``.../apps/{slug}/``."""
    url = request.url.replace(path=request.url.path + "/")
    return RedirectResponse(str(url), status_code=307)
