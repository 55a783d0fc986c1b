"""The ``/api/v2`` endpoints. Each handler parses its path and query, calls the store or an operation under
the lock, and renders; every request is counted, may be hit by an injected fault, and is authenticated
(except ``/buildinfo``) before the handler runs."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from chat_mcp_primer.testing._fake_coder._auth import authenticate, session_token
from chat_mcp_primer.testing._fake_coder._body import CREATE_BUILD, CREATE_WORKSPACE, read_body
from chat_mcp_primer.testing._fake_coder._lifecycle import is_deleted
from chat_mcp_primer.testing._fake_coder._operations import cancel_build, create_build, create_workspace
from chat_mcp_primer.testing._fake_coder._query import parse_pagination, parse_query, select_workspaces
from chat_mcp_primer.testing._fake_coder._records import TemplateRecord, UserRecord, VersionRecord
from chat_mcp_primer.testing._fake_coder._render import Renderer
from chat_mcp_primer.testing._fake_coder._state import CoderState
from chat_mcp_primer.testing._fake_coder._watch import watch_response
from chat_mcp_primer.testing._fake_coder._wire import (
    ApiError,
    go_quote,
    json_response,
    not_found,
    parse_go_bool,
    parse_uuid,
    path_uuid,
)

API_PREFIX = "/api/v2"

Handler = Callable[[Request, UserRecord], Awaitable[Response]]


class ApiRoutes:
    """The REST endpoints over one store. ``stopping`` ends open watch streams when the server stops."""

    def __init__(self, state: CoderState, stopping: threading.Event) -> None:
        self._state = state
        self._stopping = stopping

    def routes(self) -> list[BaseRoute]:
        authenticated: list[tuple[str, str, Handler]] = [
            ("GET", "/applications/host", self.applications_host),
            ("GET", "/users/{user}", self.user),
            ("GET", "/organizations", self.organizations),
            ("GET", "/templates", self.templates),
            ("GET", "/templates/{template}", self.template),
            ("GET", "/templates/{template}/versions", self.template_versions),
            ("GET", "/templates/{template}/versions/{templateversionname}", self.template_version_by_name),
            ("GET", "/organizations/{organization}/templates/{templatename}", self.template_by_name),
            ("GET", "/templateversions/{templateversion}", self.template_version),
            ("GET", "/templateversions/{templateversion}/rich-parameters", self.rich_parameters),
            ("GET", "/templateversions/{templateversion}/presets", self.presets),
            ("GET", "/users/{user}/workspace/{workspacename}", self.workspace_by_name),
            ("GET", "/workspaces", self.workspaces),
            ("GET", "/workspaces/{workspace}", self.workspace),
            ("GET", "/workspaces/{workspace}/watch", self.watch),
            ("POST", "/users/{user}/workspaces", self.create_user_workspace),
            ("POST", "/organizations/{organization}/members/{user}/workspaces", self.create_member_workspace),
            ("POST", "/workspaces/{workspace}/builds", self.create_build),
            ("GET", "/workspacebuilds/{workspacebuild}", self.build),
            ("PATCH", "/workspacebuilds/{workspacebuild}/cancel", self.cancel_build),
        ]
        routes: list[BaseRoute] = [self._route("GET", "/buildinfo", self.buildinfo, public=True)]
        routes += [self._route(method, path, handler) for method, path, handler in authenticated]
        return routes

    def _route(self, method: str, path: str, handler: Handler, *, public: bool = False) -> Route:
        label = f"{method} {API_PREFIX}{path}"
        state = self._state

        async def endpoint(request: Request) -> Response:
            with state.lock:
                state.requests[label] += 1
                injected = state.faults.take_response(label)
            if injected is not None:
                return injected
            try:
                # Public handlers never look at the viewer; path parameters are parsed after authentication,
                # as coderd's middleware chain does.
                viewer = state.admin if public else authenticate(state, session_token(request))
                return await handler(request, viewer)
            except ApiError as error:
                return error.response()

        return Route(API_PREFIX + path, endpoint, methods=[method])

    def _render(self) -> Renderer:
        return Renderer(self._state, self._state.now())

    # -- deployment, users, organizations ----------------------------------------------------------

    async def buildinfo(self, request: Request, viewer: UserRecord) -> Response:
        base_url = str(request.base_url).rstrip("/")
        with self._state.lock:
            return json_response(200, self._render().buildinfo(base_url))

    async def applications_host(self, request: Request, viewer: UserRecord) -> Response:
        """The wildcard app host with the access URL's port, or "" (coderd's `appurl.SubdomainAppHost`)."""
        with self._state.lock:
            wildcard = self._state.wildcard
        host = ""
        if wildcard is not None:
            port = request.url.port
            host = f"*{wildcard.suffix}" + (f":{port}" if port is not None else "")
        return json_response(200, {"host": host})

    async def user(self, request: Request, viewer: UserRecord) -> Response:
        with self._state.lock:
            user = self._state.resolve_user(request.path_params["user"], viewer)
            return json_response(200, self._render().user(user))

    async def organizations(self, request: Request, viewer: UserRecord) -> Response:
        with self._state.lock:
            return json_response(200, [self._render().organization()])

    def _organization(self, ref: str) -> None:
        """``{organization}``: its UUID, its name, or ``default``; 404 otherwise."""
        organization = self._state.organization
        try:
            matches = parse_uuid(ref) == organization.id
        except ValueError:
            matches = ref in (organization.name, "default")
        if not matches:
            raise not_found()

    # -- templates and versions --------------------------------------------------------------------

    def _template(self, request: Request) -> TemplateRecord:
        template = self._state.templates.get(path_uuid(request.path_params["template"]))
        if template is None or template.deleted:
            raise not_found()
        return template

    def _version(self, request: Request) -> VersionRecord:
        version = self._state.versions.get(path_uuid(request.path_params["templateversion"]))
        if version is None:
            raise not_found()
        return version

    async def templates(self, request: Request, viewer: UserRecord) -> Response:
        with self._state.lock:
            live = sorted((t for t in self._state.templates.values() if not t.deleted), key=lambda t: t.name)
            render = self._render()
            return json_response(200, [render.template(template) for template in live])

    async def template(self, request: Request, viewer: UserRecord) -> Response:
        with self._state.lock:
            return json_response(200, self._render().template(self._template(request)))

    async def template_by_name(self, request: Request, viewer: UserRecord) -> Response:
        with self._state.lock:
            self._organization(request.path_params["organization"])
            template = self._state.template_by_name(request.path_params["templatename"])
            if template is None:
                raise not_found()
            return json_response(200, self._render().template(template))

    async def template_versions(self, request: Request, viewer: UserRecord) -> Response:
        with self._state.lock:
            template = self._template(request)
            render = self._render()
            versions = [render.template_version(self._state.versions[v]) for v in template.version_ids]
            return json_response(200, versions)

    async def template_version_by_name(self, request: Request, viewer: UserRecord) -> Response:
        with self._state.lock:
            template = self._template(request)
            version = self._state.version_by_name(template, request.path_params["templateversionname"])
            if version is None:
                raise not_found()
            return json_response(200, self._render().template_version(version))

    async def template_version(self, request: Request, viewer: UserRecord) -> Response:
        with self._state.lock:
            return json_response(200, self._render().template_version(self._version(request)))

    async def rich_parameters(self, request: Request, viewer: UserRecord) -> Response:
        with self._state.lock:
            version = self._version(request)
            render = self._render()
            return json_response(200, [render.rich_parameter(p) for p in version.config.parameters])

    async def presets(self, request: Request, viewer: UserRecord) -> Response:
        with self._state.lock:
            version = self._version(request)
            render = self._render()
            pairs = zip(version.config.presets, version.preset_ids, strict=True)
            return json_response(200, [render.preset(preset, preset_id) for preset, preset_id in pairs])

    # -- workspaces --------------------------------------------------------------------------------

    async def workspace(self, request: Request, viewer: UserRecord) -> Response:
        with self._state.lock:
            workspace = self._state.workspace_by_id(path_uuid(request.path_params["workspace"]), viewer)
            include_deleted = _include_deleted(request, validation_field="deleted")
            if is_deleted(workspace, self._state.now()) and not include_deleted:
                raise ApiError(
                    410,
                    f"Workspace {go_quote(workspace.id)} was deleted, you can view this workspace by specifying "
                    "'?deleted=true' and trying again.",
                )
            return json_response(200, self._render().workspace(workspace))

    async def workspace_by_name(self, request: Request, viewer: UserRecord) -> Response:
        with self._state.lock:
            owner = self._state.resolve_user(request.path_params["user"], viewer)
            include_deleted = _include_deleted(request, validation_field="include_deleted")
            name = request.path_params["workspacename"]
            workspace = self._state.workspace_by_name(owner, name, include_deleted=include_deleted)
            if workspace is None or not self._state.can_read(viewer, workspace):
                raise not_found()
            return json_response(200, self._render().workspace(workspace))

    async def workspaces(self, request: Request, viewer: UserRecord) -> Response:
        limit, offset = parse_pagination(request.query_params)
        wanted = parse_query(request.query_params.get("q", ""))
        with self._state.lock:
            selected = select_workspaces(self._state, viewer, wanted)
            page = selected[offset : offset + limit] if limit else selected[offset:]
            render = self._render()
            return json_response(200, {"workspaces": [render.workspace(w) for w in page], "count": len(selected)})

    async def watch(self, request: Request, viewer: UserRecord) -> Response:
        with self._state.lock:
            workspace = self._state.workspace_by_id(path_uuid(request.path_params["workspace"]), viewer)
        return watch_response(self._state, workspace.id, self._stopping)

    async def create_user_workspace(self, request: Request, viewer: UserRecord) -> Response:
        with self._state.lock:
            owner = self._state.resolve_user(request.path_params["user"], viewer)
        body = read_body(await request.body(), CREATE_WORKSPACE)
        with self._state.lock:
            return self._create_workspace(viewer, owner, body)

    async def create_member_workspace(self, request: Request, viewer: UserRecord) -> Response:
        with self._state.lock:
            self._organization(request.path_params["organization"])
            owner = self._state.resolve_user(request.path_params["user"], viewer)
        body = read_body(await request.body(), CREATE_WORKSPACE)
        with self._state.lock:
            return self._create_workspace(viewer, owner, body)

    def _create_workspace(self, viewer: UserRecord, owner: UserRecord, body: dict[str, Any]) -> Response:
        workspace = create_workspace(self._state, viewer, owner, body)
        return json_response(201, self._render().workspace(workspace))

    # -- builds ------------------------------------------------------------------------------------

    async def create_build(self, request: Request, viewer: UserRecord) -> Response:
        with self._state.lock:
            workspace = self._state.workspace_by_id(path_uuid(request.path_params["workspace"]), viewer)
        body = read_body(await request.body(), CREATE_BUILD)
        with self._state.lock:
            build = create_build(self._state, viewer, workspace, body)
            return json_response(201, self._render().build(build))

    async def build(self, request: Request, viewer: UserRecord) -> Response:
        with self._state.lock:
            build = self._state.build_by_id(path_uuid(request.path_params["workspacebuild"]), viewer)
            return json_response(200, self._render().build(build))

    async def cancel_build(self, request: Request, viewer: UserRecord) -> Response:
        with self._state.lock:
            build = self._state.build_by_id(path_uuid(request.path_params["workspacebuild"]), viewer)
            cancel_build(self._state, viewer, build, request.query_params.get("expect_status", ""))
            return json_response(200, {"message": "Job has been marked as canceled..."})


def _include_deleted(request: Request, *, validation_field: str) -> bool:
    raw = request.query_params.get("include_deleted", "")
    if not raw:
        return False
    try:
        return parse_go_bool(raw)
    except ValueError:
        raise ApiError(
            400,
            f'Invalid boolean value {go_quote(raw)} for "include_deleted" query param.',
            validations=[(validation_field, "Must be a valid boolean")],
        ) from None
