"""The fake's store: every record behind one lock, lookups with Coder's visibility rules, and the counters
tests read.

Requests (on the server's thread) and test helpers (on the test's thread) both go through it; callers hold
``lock`` for any sequence of reads and writes that must be consistent. ``generation`` moves on every write,
so a watcher knows when to look again.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from chat_mcp_primer.clock import Clock
from chat_mcp_primer.testing._fake_coder._config import FakeTemplate, FakeVersion
from chat_mcp_primer.testing._fake_coder._faults import Faults
from chat_mcp_primer.testing._fake_coder._lifecycle import JobView, is_deleted, job_view
from chat_mcp_primer.testing._fake_coder._records import (
    TOKEN_ID_LENGTH,
    TOKEN_SECRET_LENGTH,
    BuildFailure,
    BuildRecord,
    IdSource,
    JobPlan,
    OrganizationRecord,
    ResourceRecord,
    TemplateRecord,
    TokenRecord,
    Transition,
    UserRecord,
    VersionRecord,
    WorkspaceRecord,
    new_agents,
)
from chat_mcp_primer.testing._fake_coder._subdomain import WildcardPattern
from chat_mcp_primer.testing._fake_coder._wire import DEFAULT_ANCHOR, Timeline, not_found, parse_uuid

# The resources a Docker template's builds leave behind: the container carries the agents and exists only
# while the workspace runs; the home volume persists across stops.
CONTAINER_RESOURCE = ("docker_container", "main")
VOLUME_RESOURCE = ("docker_volume", "home_volume")

ADMIN_USERNAME = "alice"
MEMBER_USERNAME = "bob"
ORGANIZATION_NAME = "coder"


class CoderState:
    def __init__(self, clock: Clock, *, seed: int = 0, anchor: datetime = DEFAULT_ANCHOR) -> None:
        self.lock = threading.RLock()
        self.timeline = Timeline(clock, anchor)
        self.ids = IdSource(seed)
        self.faults = Faults()
        self.generation = 0
        self.requests: Counter[str] = Counter()
        self.builds_created = 0
        self.mcp_list_calls: Counter[tuple[str, str, str]] = Counter()  # (workspace id, agent id, slug)
        self.mcp_tool_calls: Counter[tuple[str, str, str]] = Counter()
        self.deployment_id = self.ids.uuid()
        now = self.now()
        self.organization = OrganizationRecord(self.ids.uuid(), ORGANIZATION_NAME, "Coder", now)
        self.users: dict[str, UserRecord] = {}
        self.tokens: dict[str, TokenRecord] = {}
        self.templates: dict[str, TemplateRecord] = {}
        self.versions: dict[str, VersionRecord] = {}
        self.workspaces: dict[str, WorkspaceRecord] = {}
        self.builds: dict[str, BuildRecord] = {}
        # Coder added ``template_active_version_id`` to workspaces in v2.1 (coder/coder#9226); False answers
        # as older releases do, without it, so a caller must read the template to learn the active version.
        self.workspaces_name_active_version = True
        # The app proxy's deployment options: ``--disable-path-apps`` (path-based apps answer 403) and
        # ``--dangerous-allow-path-app-site-owner-access`` (site owners may open other users' path apps).
        self.disable_path_apps = False
        self.path_app_site_owner_access = False
        # ``--wildcard-access-url`` (``*.apps.coder.test``): the hosts subdomain apps are served on; None
        # when the deployment has none, as Coder's default.
        self.wildcard: WildcardPattern | None = None
        self.admin = self.add_user(ADMIN_USERNAME, admin=True)
        self.member = self.add_user(MEMBER_USERNAME, admin=False)

    def now(self) -> float:
        return self.timeline.now()

    def touch(self) -> None:
        """Record that something changed (watchers compare generations)."""
        self.generation += 1

    # -- users and tokens --------------------------------------------------------------------------

    def add_user(self, username: str, *, admin: bool) -> UserRecord:
        with self.lock:
            user = UserRecord(
                id=self.ids.uuid(),
                username=username,
                email=f"{username}@example.com",
                name=username.capitalize(),
                admin=admin,
                created_at=self.now(),
            )
            self.users[user.id] = user
            self.touch()
            return user

    def issue_token(self, user: UserRecord) -> TokenRecord:
        with self.lock:
            token = TokenRecord(
                key_id=self.ids.token_part(TOKEN_ID_LENGTH),
                secret=self.ids.token_part(TOKEN_SECRET_LENGTH),
                user_id=user.id,
            )
            self.tokens[token.key_id] = token
            return token

    def user_by_username(self, username: str) -> UserRecord | None:
        lowered = username.lower()
        return next((user for user in self.users.values() if user.username.lower() == lowered), None)

    def resolve_user(self, ref: str, viewer: UserRecord) -> UserRecord:
        """``{user}`` in a path: ``me``, a UUID or a username; 404 when there is no such user."""
        if ref == "me":
            return viewer
        try:
            user = self.users.get(parse_uuid(ref))
        except ValueError:
            user = self.user_by_username(ref)
        if user is None:
            raise not_found()
        return user

    # -- templates and versions --------------------------------------------------------------------

    def add_template(self, config: FakeTemplate) -> TemplateRecord:
        with self.lock:
            if any(t.name.lower() == config.name.lower() and not t.deleted for t in self.templates.values()):
                raise ValueError(f"a template named {config.name!r} already exists")
            now = self.now()
            template = TemplateRecord(
                id=self.ids.uuid(),
                organization_id=self.organization.id,
                config=config,
                created_at=now,
                updated_at=now,
                created_by=self.admin.id,
                active_version_id="",
                version_ids=[],
            )
            self.templates[template.id] = template
            for version in config.versions:
                record = self.add_version(template, version)
                if version.name == config.initial_active_version.name:
                    template.active_version_id = record.id
            return template

    def add_version(self, template: TemplateRecord, config: FakeVersion) -> VersionRecord:
        with self.lock:
            if any(self.versions[v].config.name == config.name for v in template.version_ids):
                raise ValueError(f"template {template.name!r} already has a version named {config.name!r}")
            version = VersionRecord(
                id=self.ids.uuid(),
                template_id=template.id,
                config=config,
                created_at=self.now(),
                job_id=self.ids.uuid(),
                file_id=self.ids.uuid(),
                preset_ids=tuple(self.ids.uuid() for _ in config.presets),
            )
            self.versions[version.id] = version
            template.version_ids.append(version.id)
            self.touch()
            return version

    def import_job(self, version: VersionRecord, now: float) -> JobView:
        """The version's import job: running for ``import_seconds``, then succeeded or failed."""
        config = version.config
        failure = BuildFailure(config.import_error) if config.import_error is not None else None
        plan = JobPlan(version.created_at, 0.0, config.import_seconds, 0.0, failure)
        return job_view(plan, now)

    def template_by_name(self, name: str) -> TemplateRecord | None:
        lowered = name.lower()
        return next((t for t in self.templates.values() if t.name.lower() == lowered and not t.deleted), None)

    def version_by_name(self, template: TemplateRecord, name: str) -> VersionRecord | None:
        return next((self.versions[v] for v in template.version_ids if self.versions[v].config.name == name), None)

    # -- workspaces and builds ---------------------------------------------------------------------

    def can_read(self, viewer: UserRecord, workspace: WorkspaceRecord) -> bool:
        """Owners read their workspaces; admins (Coder's ``owner`` role) read everyone's."""
        return viewer.admin or workspace.owner_id == viewer.id

    def workspace_by_id(self, workspace_id: str, viewer: UserRecord) -> WorkspaceRecord:
        workspace = self.workspaces.get(workspace_id)
        if workspace is None or not self.can_read(viewer, workspace):
            raise not_found()
        return workspace

    def workspace_by_name(self, owner: UserRecord, name: str, *, include_deleted: bool) -> WorkspaceRecord | None:
        """The owner's live workspace of that name (case-insensitive); else the newest deleted one if asked."""
        now = self.now()
        lowered = name.lower()
        candidates = [w for w in self.workspaces.values() if w.owner_id == owner.id and w.name.lower() == lowered]
        live = [w for w in candidates if not is_deleted(w, now)]
        if live:
            return live[0]
        if include_deleted and candidates:
            return max(candidates, key=lambda w: w.created_at)
        return None

    def build_by_id(self, build_id: str, viewer: UserRecord) -> BuildRecord:
        build = self.builds.get(build_id)
        if build is None or not self.can_read(viewer, self.workspaces[build.workspace_id]):
            raise not_found()
        return build

    def insert_workspace(
        self,
        *,
        name: str,
        owner: UserRecord,
        template: TemplateRecord,
        created_at: float,
        ttl_ms: int | None = None,
        autostart_schedule: str | None = None,
        automatic_updates: str = "never",
    ) -> WorkspaceRecord:
        with self.lock:
            workspace = WorkspaceRecord(
                id=self.ids.uuid(),
                name=name,
                owner_id=owner.id,
                organization_id=template.organization_id,
                template_id=template.id,
                created_at=created_at,
                ttl_ms=ttl_ms,
                autostart_schedule=autostart_schedule,
                automatic_updates=automatic_updates,
            )
            self.workspaces[workspace.id] = workspace
            self.touch()
            return workspace

    def insert_build(
        self,
        workspace: WorkspaceRecord,
        transition: Transition,
        version: VersionRecord,
        *,
        initiator: UserRecord,
        created_at: float,
        reason: str = "initiator",
        parameters: Sequence[tuple[str, str]] = (),
        preset_id: str | None = None,
        failure: BuildFailure | None = None,
        stall: bool = False,
    ) -> BuildRecord:
        """Append a build planned from ``version``'s timings; start builds get brand-new agents."""
        with self.lock:
            config = version.config
            run_seconds = config.build_seconds if transition == "start" else config.stop_seconds
            plan = JobPlan(
                created_at=created_at,
                queue_seconds=config.queue_seconds,
                run_seconds=float("inf") if stall else run_seconds,
                cancel_seconds=config.cancel_seconds,
                failure=failure,
            )
            build = BuildRecord(
                id=self.ids.uuid(),
                workspace_id=workspace.id,
                number=len(workspace.builds) + 1,
                transition=transition,
                version_id=version.id,
                initiator_id=initiator.id,
                reason=reason,
                job_id=self.ids.uuid(),
                job=plan,
                resources=self._plan_resources(transition, version),
                parameters=tuple(parameters),
                preset_id=preset_id,
            )
            workspace.builds.append(build)
            self.builds[build.id] = build
            self.touch()
            return build

    def _plan_resources(self, transition: Transition, version: VersionRecord) -> tuple[ResourceRecord, ...]:
        volume = ResourceRecord(self.ids.uuid(), *VOLUME_RESOURCE)
        if transition == "delete":
            return ()
        if transition == "stop":
            return (volume,)
        agents = new_agents(self.ids, version.config.agents)
        return (ResourceRecord(self.ids.uuid(), *CONTAINER_RESOURCE, agents=agents), volume)
