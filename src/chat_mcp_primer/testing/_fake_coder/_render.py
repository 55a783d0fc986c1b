"""Coder's JSON for workspaces, their builds, resources, agents and apps, at one instant ``now``.

What is shown is derived from the records and the clock by `_lifecycle`. Field names and shapes follow
`codersdk` as a v2.27 server sends them. Call with the state's lock held.
"""

from __future__ import annotations

from typing import Any

from chat_mcp_primer.testing._fake_coder._config import (
    HEALTHCHECK_INTERVAL_SECONDS,
    HEALTHCHECK_THRESHOLD,
    FakeApp,
    FakeMcpServer,
)
from chat_mcp_primer.testing._fake_coder._lifecycle import (
    AgentView,
    JobView,
    agent_view,
    build_status,
    job_view,
    mcp_app_health,
    plain_app_health,
    visible_resources,
)
from chat_mcp_primer.testing._fake_coder._records import (
    AgentRecord,
    BuildRecord,
    ResourceRecord,
    UserRecord,
    WorkspaceRecord,
)
from chat_mcp_primer.testing._fake_coder._render_catalog import AGENT_API_VERSION, MS_PER_SECOND, CatalogRenderer
from chat_mcp_primer.testing._fake_coder._subdomain import subdomain_app_name

AGENT_VERSION = "v2.27.1"
# The apps Coder shows for every agent unless a template turns them off.
_DISPLAY_APPS = ("vscode", "vscode_insiders", "web_terminal", "ssh_helper", "port_forwarding_helper")


class Renderer(CatalogRenderer):
    """Every object the API sends, rendered at one instant ``now``."""

    # -- workspaces --------------------------------------------------------------------------------

    def workspace(self, workspace: WorkspaceRecord) -> dict[str, Any]:
        template = self.state.templates[workspace.template_id]
        owner = self.state.users[workspace.owner_id]
        build = self.build(workspace.latest_build)
        agents = [agent for resource in build["resources"] for agent in resource["agents"]]
        failing = [agent["id"] for agent in agents if not agent["health"]["healthy"]]
        body: dict[str, Any] = {
            "id": workspace.id,
            "created_at": self._stamp(workspace.created_at),
            "updated_at": self._stamp(workspace.created_at),
            "owner_id": owner.id,
            "owner_name": owner.username,
            "owner_avatar_url": "",
            "organization_id": workspace.organization_id,
            "organization_name": self.state.organization.name,
            "template_id": template.id,
            "template_name": template.config.name,
            "template_display_name": template.config.display_name,
            "template_icon": template.config.icon,
            "template_allow_user_cancel_workspace_jobs": template.config.allow_user_cancel_workspace_jobs,
            "template_active_version_id": template.active_version_id,
            "template_require_active_version": template.config.require_active_version,
            "template_use_classic_parameter_flow": False,
            "latest_build": build,
            "latest_app_status": None,
            "outdated": workspace.latest_build.version_id != template.active_version_id,
            "name": workspace.name,
            "last_used_at": self._stamp(workspace.created_at),
            "deleting_at": None,
            "dormant_at": None,
            "health": {"healthy": not failing, "failing_agents": failing},
            "automatic_updates": workspace.automatic_updates,
            "allow_renames": False,
            "favorite": False,
            "next_start_at": None,
            "is_prebuild": False,
        }
        if workspace.autostart_schedule is not None:
            body["autostart_schedule"] = workspace.autostart_schedule
        if workspace.ttl_ms is not None:
            body["ttl_ms"] = workspace.ttl_ms
        if not self.state.workspaces_name_active_version:
            del body["template_active_version_id"]
        return body

    def build(self, build: BuildRecord) -> dict[str, Any]:
        workspace = self.state.workspaces[build.workspace_id]
        owner = self.state.users[workspace.owner_id]
        initiator = self.state.users[build.initiator_id]
        version = self.state.versions[build.version_id]
        template = self.state.templates[workspace.template_id]
        job = job_view(build.job, self.now)
        deadline = None
        if build.transition == "start" and job.status == "succeeded" and workspace.ttl_ms and job.completed_at:
            deadline = self._stamp(job.completed_at + workspace.ttl_ms / MS_PER_SECOND)
        return {
            "id": build.id,
            "created_at": self._stamp(build.job.created_at),
            "updated_at": self._stamp(job.completed_at or job.started_at or build.job.created_at),
            "workspace_id": workspace.id,
            "workspace_name": workspace.name,
            "workspace_owner_id": owner.id,
            "workspace_owner_name": owner.username,
            "workspace_owner_avatar_url": "",
            "template_version_id": version.id,
            "template_version_name": version.config.name,
            "build_number": build.number,
            "transition": build.transition,
            "initiator_id": initiator.id,
            "initiator_name": initiator.username,
            "job": self._job(
                job,
                build.job_id,
                file_id=version.file_id,
                kind="workspace_build",
                job_input={"workspace_build_id": build.id},
                metadata={
                    "template_version_name": version.config.name,
                    "template_id": template.id,
                    "template_name": template.config.name,
                    "template_display_name": template.config.display_name,
                    "template_icon": template.config.icon,
                    "workspace_id": workspace.id,
                    "workspace_name": workspace.name,
                    "workspace_build_transition": build.transition,
                },
                initiator_id=initiator.id,
            ),
            "reason": build.reason,
            "resources": [self._resource(resource, build, job) for resource in visible_resources(build, job)],
            "deadline": deadline,
            "max_deadline": None,
            "status": build_status(job.status, build.transition),
            "daily_cost": 0,
            "matched_provisioners": self._provisioners(job),
            "template_version_preset_id": build.preset_id,
            "has_ai_task": False,
            "has_external_agent": False,
        }

    def _resource(self, resource: ResourceRecord, build: BuildRecord, job: JobView) -> dict[str, Any]:
        return {
            "id": resource.id,
            "created_at": self._stamp(job.started_at if job.started_at is not None else build.job.created_at),
            "job_id": build.job_id,
            "workspace_transition": build.transition,
            "type": resource.type,
            "name": resource.name,
            "hide": False,
            "icon": "",
            "agents": [self.agent(agent, resource, build, job) for agent in resource.agents],
            "metadata": [],
            "daily_cost": 0,
        }

    def agent(self, agent: AgentRecord, resource: ResourceRecord, build: BuildRecord, job: JobView) -> dict[str, Any]:
        config = agent.config
        view = agent_view(config, job, self.now)
        health: dict[str, Any] = {"healthy": view.healthy}
        if view.health_reason is not None:
            health["reason"] = view.health_reason
        return {
            "id": agent.id,
            "parent_id": agent.parent_id,
            "created_at": self._stamp(view.created_at),
            "updated_at": self._stamp(view.created_at),
            "first_connected_at": self._maybe(view.first_connected_at),
            "last_connected_at": self._maybe(view.last_connected_at),
            "disconnected_at": None,
            "started_at": self._maybe(view.started_at),
            "ready_at": self._maybe(view.ready_at),
            "status": view.status,
            "lifecycle_state": view.lifecycle_state,
            "name": config.name,
            "resource_id": resource.id,
            "architecture": config.architecture,
            "environment_variables": {},
            "operating_system": config.operating_system,
            "logs_length": 0,
            "logs_overflowed": False,
            "directory": config.directory,
            "expanded_directory": config.directory,
            "version": AGENT_VERSION,
            "api_version": AGENT_API_VERSION,
            "apps": self._apps(agent, view, build),
            "connection_timeout_seconds": config.connection_timeout_seconds,
            "troubleshooting_url": "",
            "subsystems": [],
            "health": health,
            "display_apps": list(_DISPLAY_APPS),
            "log_sources": [],
            "scripts": [],
            "startup_script_behavior": "non-blocking",
        }

    def _apps(self, agent: AgentRecord, view: AgentView, build: BuildRecord) -> list[dict[str, Any]]:
        workspace = self.state.workspaces[build.workspace_id]
        owner = self.state.users[workspace.owner_id]
        apps = []
        for server in agent.config.mcp_servers:
            url = f"http://localhost:{server.port}"
            healthcheck = _healthcheck(f"{url}/mcp") if server.healthcheck else _NO_HEALTHCHECK
            apps.append(
                self._app(
                    agent.app_id(server.slug),
                    server.slug,
                    server.display_name or server.slug,
                    url,
                    healthcheck,
                    mcp_app_health(server, view, self.now),
                    hidden=False,
                    external=False,
                    sharing_level="owner",
                    subdomain=_subdomain_name(server, agent, workspace, owner),
                )
            )
        for app in agent.config.apps:
            apps.append(
                self._app(
                    agent.app_id(app.slug),
                    app.slug,
                    app.display_name or app.slug,
                    app.url,
                    _healthcheck(f"{app.url}/healthz") if app.healthcheck else _NO_HEALTHCHECK,
                    plain_app_health(app, view),
                    hidden=app.hidden,
                    external=app.external,
                    sharing_level=app.sharing_level,
                    subdomain=_subdomain_name(app, agent, workspace, owner),
                )
            )
        return apps

    @staticmethod
    def _app(
        app_id: str,
        slug: str,
        display_name: str,
        url: str,
        healthcheck: dict[str, Any],
        health: str,
        *,
        hidden: bool,
        external: bool,
        sharing_level: str,
        subdomain: str | None,
    ) -> dict[str, Any]:
        rendered = {
            "id": app_id,
            "url": url,
            "external": external,
            "slug": slug,
            "display_name": display_name,
            "icon": "",
            "subdomain": subdomain is not None,
            "sharing_level": sharing_level,
            "healthcheck": healthcheck,
            "health": health,
            "hidden": hidden,
            "open_in": "slim-window",
            "statuses": [],
        }
        if subdomain is not None:
            # `omitempty` in codersdk: coderd names the host of subdomain apps only, wildcard or not.
            rendered["subdomain_name"] = subdomain
        return rendered


_NO_HEALTHCHECK: dict[str, Any] = {"url": "", "interval": 0, "threshold": 0}


def _healthcheck(url: str) -> dict[str, Any]:
    return {"url": url, "interval": HEALTHCHECK_INTERVAL_SECONDS, "threshold": HEALTHCHECK_THRESHOLD}


def _subdomain_name(
    app: FakeMcpServer | FakeApp, agent: AgentRecord, workspace: WorkspaceRecord, owner: UserRecord
) -> str | None:
    """The host label of a subdomain app, as coderd computes it; None for a path-based app."""
    if not app.subdomain:
        return None
    return subdomain_app_name(app.slug, agent.config.name, workspace.name, owner.username)
