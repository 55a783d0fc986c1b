"""`FakeCoder`: the fake's Python face for tests: configure it, put workspaces in a state, read counters,
inject faults."""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from starlette.applications import Starlette

from chat_mcp_primer.clock import Clock
from chat_mcp_primer.testing._fake_coder._app import build_app
from chat_mcp_primer.testing._fake_coder._body import name_is_valid
from chat_mcp_primer.testing._fake_coder._config import FakeTemplate, FakeVersion
from chat_mcp_primer.testing._fake_coder._faults import BuildFault
from chat_mcp_primer.testing._fake_coder._operations import cancel_build
from chat_mcp_primer.testing._fake_coder._params import resolve_parameters
from chat_mcp_primer.testing._fake_coder._records import (
    BuildFailure,
    JobPlan,
    TemplateRecord,
    Transition,
    UserRecord,
    VersionRecord,
    WorkspaceRecord,
)
from chat_mcp_primer.testing._fake_coder._render import Renderer
from chat_mcp_primer.testing._fake_coder._state import CoderState
from chat_mcp_primer.testing._fake_coder._subdomain import WildcardPattern
from chat_mcp_primer.testing._fake_coder._wire import DEFAULT_ANCHOR, ApiError, parse_uuid

WorkspaceState = Literal["pending", "starting", "running", "stopped", "failed", "deleted"]
DEFAULT_BUILD_ERROR = "terraform apply: exit status 1"


@dataclass(frozen=True, slots=True)
class FakeUser:
    """A user of the fake deployment. ``admin`` users have Coder's ``owner`` role and read everything."""

    id: str
    username: str
    admin: bool


class FakeCoder:
    """An in-memory Coder deployment speaking Coder's v2 REST API; serve it with `serve_fake_coder`.

    State is a pure function of ``clock.now()`` evaluated when a request arrives: no background task
    moves anything, so a `MockClock` drives builds, agents and workspace MCP servers exactly, and the
    fake serves tests on any event loop from its own thread.

    The deployment has one organization (``coder``) and two users: ``alice``, an admin, whose session
    token is `token`, and ``bob``, a member (`member_token`). An admin token lists everyone's workspaces
    unless the query says ``owner:me``; give ``bob`` a workspace to catch a client that forgets.

    All methods are thread-safe. Workspaces are named by id or by name (of ``owner``, default ``alice``);
    templates by name. ``workspaces_name_active_version=False`` answers as Coder releases before v2.1 did:
    workspaces without ``template_active_version_id``, so only the template names its active version.
    ``disable_path_apps`` answers every path-based app request 403, as a deployment started with
    ``--disable-path-apps``; path-based apps are owner-only (another user's is 404, admins included)
    unless ``path_app_site_owner_access`` (``--dangerous-allow-path-app-site-owner-access``).
    ``wildcard_access_url`` (``--wildcard-access-url``, e.g. ``"*.apps.coder.test"``: no scheme, no port)
    serves subdomain apps at hosts under it; `serve_fake_coder` resolves those hosts to its loopback
    address in this process (`loopback_hosts`), so no DNS is needed. Without it, as in Coder by default,
    ``GET /api/v2/applications/host`` answers ``""`` and subdomain apps are reached at their path only.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        templates: Sequence[FakeTemplate] = (),
        seed: int = 0,
        anchor: datetime = DEFAULT_ANCHOR,
        workspaces_name_active_version: bool = True,
        disable_path_apps: bool = False,
        path_app_site_owner_access: bool = False,
        wildcard_access_url: str = "",
    ) -> None:
        self._state = CoderState(clock, seed=seed, anchor=anchor)
        self._state.workspaces_name_active_version = workspaces_name_active_version
        self._state.disable_path_apps = disable_path_apps
        self._state.path_app_site_owner_access = path_app_site_owner_access
        self._state.wildcard = WildcardPattern.parse(wildcard_access_url) if wildcard_access_url else None
        self._admin_token = self._state.issue_token(self._state.admin)
        self._member_token = self._state.issue_token(self._state.member)
        for template in templates:
            self.add_template(template)

    def __repr__(self) -> str:
        with self._state.lock:
            return (
                f"FakeCoder(templates={len(self._state.templates)}, workspaces={len(self._state.workspaces)}, "
                f"builds={len(self._state.builds)})"
            )

    # -- identity ----------------------------------------------------------------------------------

    @property
    def clock(self) -> Clock:
        return self._state.timeline.clock

    @property
    def user(self) -> FakeUser:
        """``alice``, the admin the default `token` belongs to."""
        return _public(self._state.admin)

    @property
    def member(self) -> FakeUser:
        """``bob``, a member without the admin role."""
        return _public(self._state.member)

    @property
    def organization_id(self) -> str:
        return self._state.organization.id

    @property
    def token(self) -> str:
        """The admin's session token (a secret: keep it out of logs and assertion messages)."""
        return self._admin_token.value

    @property
    def member_token(self) -> str:
        return self._member_token.value

    def issue_token(self, username: str = "alice") -> str:
        """A new session token for a user, e.g. one a test may revoke without disturbing others."""
        with self._state.lock:
            user = self._user(username)
            return self._state.issue_token(user).value

    @property
    def wildcard_access_url(self) -> str:
        """The wildcard host subdomain apps are served under (``*.apps.coder.test``), or ``""``."""
        wildcard = self._state.wildcard
        return f"*{wildcard.suffix}" if wildcard is not None else ""

    # -- templates ---------------------------------------------------------------------------------

    def add_template(self, template: FakeTemplate) -> str:
        """Add a template with its versions (all imported from now on); returns its id."""
        return self._state.add_template(template).id

    def add_version(self, template: str, version: FakeVersion, *, activate: bool = False) -> str:
        """Add a version to a template; its import runs from now for ``version.import_seconds``.

        ``activate`` makes it the active version, which requires it to import at once (`ValueError` if not).
        """
        if activate and not version.imports_at_once:
            raise ValueError(f"version {version.name!r} cannot be made active before it has imported")
        with self._state.lock:
            record = self._state.add_version(self._template(template), version)
            if activate:
                self.set_active_version(template, version.name)
            return record.id

    def set_active_version(self, template: str, version: str) -> None:
        """Promote a version; workspaces on other versions read ``outdated`` from now on.

        Raises `ValueError` if the version's import has not succeeded, as Coder refuses it.
        """
        with self._state.lock:
            record = self._template(template)
            target = self._version(record, version)
            if self._state.import_job(target, self._state.now()).status != "succeeded":
                raise ValueError(f"version {version!r} has not imported successfully")
            record.active_version_id = target.id
            record.updated_at = self._state.now()
            self._state.touch()

    def delete_template(self, template: str) -> None:
        """Delete a template: it is no longer listed or found, and creating a workspace from it is 404."""
        with self._state.lock:
            self._template(template).deleted = True
            self._state.touch()

    def template_id(self, template: str) -> str:
        with self._state.lock:
            return self._template(template).id

    def version_id(self, template: str, version: str) -> str:
        with self._state.lock:
            return self._version(self._template(template), version).id

    # -- workspaces --------------------------------------------------------------------------------

    def create_workspace(
        self,
        name: str,
        template: str,
        *,
        owner: str = "alice",
        version: str | None = None,
        state: WorkspaceState = "running",
        parameters: Mapping[str, str] | None = None,
        error: str = DEFAULT_BUILD_ERROR,
    ) -> str:
        """A workspace placed directly in ``state`` (no API request, no faults consumed); returns its id.

        ``running``: started long enough ago that its agents are connected and ready and its MCP servers
        are up. ``stopped``: started, then stopped. ``starting``: its start build's job began running just
        now. ``pending``: its start build was queued just now. ``failed``: its start build failed with
        ``error``. ``deleted``: started, then deleted. ``version`` defaults to the template's active one.
        Raises `ValueError` for an unknown owner, template or version, a taken or invalid name, or
        parameter values the version would reject.
        """
        with self._state.lock:
            owner_record = self._user(owner)
            template_record = self._template(template)
            if not name_is_valid(name):
                raise ValueError(f"{name!r} is not a valid workspace name")
            if self._state.workspace_by_name(owner_record, name, include_deleted=False) is not None:
                raise ValueError(f"{owner} already has a workspace named {name!r}")
            version_record = (
                self._version(template_record, version)
                if version is not None
                else self._state.versions[template_record.active_version_id]
            )
            try:
                values = resolve_parameters(version_record, list((parameters or {}).items()), {}, None)
            except ApiError as exc:
                raise ValueError(f"{exc.message}: {exc.detail}") from None
            timings = _Timings.of(version_record.config)
            now = self._state.now()
            started_then_ended = now - timings.start - timings.settle - timings.stop
            schedules: dict[str, list[tuple[Transition, float]]] = {
                "pending": [("start", now)],
                "starting": [("start", now - timings.queue)],
                "running": [("start", now - timings.start - timings.settle)],
                "failed": [("start", now - timings.start)],
                "stopped": [("start", started_then_ended), ("stop", now - timings.stop)],
                "deleted": [("start", started_then_ended), ("delete", now - timings.stop)],
            }
            schedule = schedules[state]
            workspace = self._state.insert_workspace(
                name=name, owner=owner_record, template=template_record, created_at=schedule[0][1]
            )
            for transition, created_at in schedule:
                self._state.insert_build(
                    workspace,
                    transition,
                    version_record,
                    initiator=owner_record,
                    created_at=created_at,
                    parameters=values,
                    failure=BuildFailure(error) if state == "failed" else None,
                )
            return workspace.id

    def workspace(self, workspace: str, *, owner: str = "alice") -> dict[str, Any]:
        """The Workspace JSON the API would send now (deleted workspaces included)."""
        with self._state.lock:
            return Renderer(self._state, self._state.now()).workspace(self._workspace(workspace, owner))

    def builds(self, workspace: str, *, owner: str = "alice") -> list[dict[str, Any]]:
        """Every build of the workspace as WorkspaceBuild JSON, oldest first."""
        with self._state.lock:
            render = Renderer(self._state, self._state.now())
            return [render.build(build) for build in self._workspace(workspace, owner).builds]

    # -- counters ----------------------------------------------------------------------------------

    @property
    def requests(self) -> dict[str, int]:
        """Requests received per route, keyed like ``"GET /api/v2/workspaces/{workspace}"`` (app proxy:
        ``"POST /@{owner}/{workspace_and_agent}/apps/{slug}/{path}"``; subdomain apps:
        ``"POST {slug}--{agent}--{workspace}--{owner}.{wildcard}/{path}"``), including failed and faulted ones."""
        with self._state.lock:
            return dict(self._state.requests)

    def request_count(self, route: str) -> int:
        with self._state.lock:
            return self._state.requests[route]

    @property
    def builds_created(self) -> int:
        """Builds created through the API (including each new workspace's first build)."""
        with self._state.lock:
            return self._state.builds_created

    def mcp_list_calls(self, workspace: str, slug: str = "mcp", *, owner: str = "alice") -> int:
        """``tools/list`` requests the workspace's MCP server ``slug`` answered, over all its agents."""
        with self._state.lock:
            workspace_id = self._workspace(workspace, owner).id
            return sum(n for (ws, _, s), n in self._state.mcp_list_calls.items() if ws == workspace_id and s == slug)

    def mcp_tool_calls(self, workspace: str, slug: str = "mcp", *, owner: str = "alice") -> int:
        """``tools/call`` requests the workspace's MCP server ``slug`` answered, over all its agents."""
        with self._state.lock:
            workspace_id = self._workspace(workspace, owner).id
            return sum(n for (ws, _, s), n in self._state.mcp_tool_calls.items() if ws == workspace_id and s == slug)

    # -- faults ------------------------------------------------------------------------------------

    def fail_next_build(
        self, error: str = DEFAULT_BUILD_ERROR, error_code: str = "", *, transition: str | None = None
    ) -> None:
        """The next build created through the API (of ``transition``, or any) fails when its job would
        have succeeded, with ``job.error`` = ``error`` and ``job.error_code`` = ``error_code``
        (e.g. ``INSUFFICIENT_QUOTA``)."""
        with self._state.lock:
            self._state.faults.add_build_fault(BuildFault(transition, failure=BuildFailure(error, error_code)))

    def stall_next_build(self, *, transition: str | None = None) -> None:
        """The next build created through the API (of ``transition``, or any) stays running until canceled,
        so every new build meanwhile gets 409 "A workspace build is already active."."""
        with self._state.lock:
            self._state.faults.add_build_fault(BuildFault(transition, stall=True))

    def fail_requests(self, count: int, *, status: int = 503, route: str | None = None) -> None:
        """The next ``count`` API requests (to ``route`` only, if given, keyed as in `requests`) get a
        ``status`` 5xx response instead of being handled."""
        with self._state.lock:
            self._state.faults.add_server_errors(count, status, route)

    def rate_limit(self, count: int, *, retry_after_seconds: int = 1, route: str | None = None) -> None:
        """The next ``count`` API requests (to ``route`` only, if given) get 429 with ``Retry-After``."""
        with self._state.lock:
            self._state.faults.add_rate_limits(count, retry_after_seconds, route)

    def drop_connections(self, count: int, *, route: str | None = None) -> None:
        """The next ``count`` API requests (to ``route`` only, if given) have their connection cut midway
        through the answer, as when a load balancer or a Coder replica restarts."""
        with self._state.lock:
            self._state.faults.add_dropped_connections(count, route)

    def cancel_latest_build(self, workspace: str, *, owner: str = "alice") -> None:
        """Cancel the workspace's latest build now, as someone would from the dashboard: a pending job is
        canceled at once, a running one reads ``canceling`` until the provisioner acknowledges it.
        Raises `ValueError` when the build has already completed or was canceled."""
        with self._state.lock:
            build = self._workspace(workspace, owner).latest_build
            try:
                cancel_build(self._state, self._state.admin, build, expect_status="")
            except ApiError as exc:
                raise ValueError(exc.message) from None

    def revoke_token(self, token: str | None = None) -> None:
        """Revoke a session token (default: `token`); requests with it get 401 from then on."""
        value = token if token is not None else self.token
        with self._state.lock:
            record = self._state.tokens.get(value.split("-", 1)[0])
            if record is None or record.value != value:
                raise ValueError("no such token")
            record.revoked = True

    def delete_workspace(self, workspace: str, *, owner: str = "alice") -> None:
        """Delete a workspace now, as someone else would mid-turn: a delete build that has already
        succeeded. Reads by id get 410 and lookups by name 404 from now on."""
        with self._state.lock:
            record = self._workspace(workspace, owner)
            now = self._state.now()
            version = self._state.versions[record.latest_build.version_id]
            build = self._state.insert_build(record, "delete", version, initiator=self._state.admin, created_at=now)
            build.job = JobPlan(created_at=now, queue_seconds=0.0, run_seconds=0.0, cancel_seconds=0.0)

    def clear_faults(self) -> None:
        """Drop every injected fault not consumed yet."""
        with self._state.lock:
            self._state.faults.clear()

    @property
    def pending_faults(self) -> int:
        """Injected error responses and build faults not consumed yet."""
        with self._state.lock:
            return self._state.faults.pending

    # -- serving -----------------------------------------------------------------------------------

    def asgi_app(self, stopping: threading.Event | None = None) -> Starlette:
        """A new ASGI app serving this fake. Create it on the thread whose event loop serves it, and run its
        lifespan (it hosts the workspace MCP servers). Setting ``stopping`` ends open watch streams.
        `serve_fake_coder` does all this."""
        return build_app(self._state, stopping if stopping is not None else threading.Event())

    # -- lookups -----------------------------------------------------------------------------------

    def _user(self, username: str) -> UserRecord:
        user = self._state.user_by_username(username)
        if user is None:
            raise ValueError(f"no user {username!r}")
        return user

    def _template(self, name: str) -> TemplateRecord:
        template = self._state.template_by_name(name)
        if template is None:
            raise ValueError(f"no template {name!r}")
        return template

    def _version(self, template: TemplateRecord, name: str) -> VersionRecord:
        version = self._state.version_by_name(template, name)
        if version is None:
            raise ValueError(f"template {template.name!r} has no version {name!r}")
        return version

    def _workspace(self, ref: str, owner: str) -> WorkspaceRecord:
        try:
            found = self._state.workspaces.get(parse_uuid(ref))
        except ValueError:
            found = self._state.workspace_by_name(self._user(owner), ref, include_deleted=True)
        if found is None:
            raise ValueError(f"no workspace {ref!r}")
        return found


def _public(user: UserRecord) -> FakeUser:
    return FakeUser(id=user.id, username=user.username, admin=user.admin)


@dataclass(frozen=True, slots=True)
class _Timings:
    """How long a version's builds take to settle, counting only the parts that ever end."""

    queue: float
    start: float
    stop: float
    settle: float

    @classmethod
    def of(cls, version: FakeVersion) -> _Timings:
        settle = 0.0
        for agent in version.agents:
            cold_start = max((s.cold_start_seconds for s in agent.mcp_servers), default=0.0)
            parts = (agent.connect_seconds, agent.startup_seconds, agent.ready_after_timeout_seconds or 0.0, cold_start)
            settle = max(settle, sum(part for part in parts if math.isfinite(part)))
        return cls(
            queue=version.queue_seconds,
            start=version.queue_seconds + version.build_seconds,
            stop=version.queue_seconds + version.stop_seconds,
            settle=settle,
        )
