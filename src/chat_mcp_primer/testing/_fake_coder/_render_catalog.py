"""Coder's JSON for the deployment's catalog: build info, users, the organization, templates, template
versions, their parameters and presets, and provisioner jobs.

Field names and shapes follow `codersdk` as a v2.27 server sends them; optional Go pointers tagged
``omitempty`` are left out when unset, as Go does. Call with the state's lock held.
"""

from __future__ import annotations

from typing import Any

from chat_mcp_primer.testing._fake_coder._config import FakeParameter, FakePreset
from chat_mcp_primer.testing._fake_coder._lifecycle import JobView
from chat_mcp_primer.testing._fake_coder._records import TemplateRecord, UserRecord, VersionRecord
from chat_mcp_primer.testing._fake_coder._state import CoderState

SERVER_VERSION = "v2.27.1+3b3d2a5"
AGENT_API_VERSION = "2.6"
PROVISIONER_API_VERSION = "1.9"
MS_PER_SECOND = 1000
# Coder's default activity bump: a workspace in use stays up an hour longer.
_ACTIVITY_BUMP_MS = 3_600_000
_FORM_TYPES = {"bool": "checkbox", "list(string)": "tag-select"}


class CatalogRenderer:
    """Renders at one instant ``now``; `Renderer` adds workspaces, builds and agents."""

    def __init__(self, state: CoderState, now: float) -> None:
        self.state = state
        self.now = now
        self._stamp = state.timeline.stamp
        self._maybe = state.timeline.maybe

    # -- people and places -------------------------------------------------------------------------

    def user(self, user: UserRecord) -> dict[str, Any]:
        return {
            "id": user.id,
            "username": user.username,
            "avatar_url": "",
            "name": user.name,
            "email": user.email,
            "created_at": self._stamp(user.created_at),
            "updated_at": self._stamp(user.created_at),
            "last_seen_at": self._stamp(self.now),
            "status": "active",
            "login_type": "password",
            "theme_preference": "",
            "organization_ids": [self.state.organization.id],
            "roles": [{"name": "owner", "display_name": "Owner"}] if user.admin else [],
        }

    def organization(self) -> dict[str, Any]:
        org = self.state.organization
        return {
            "id": org.id,
            "name": org.name,
            "display_name": org.display_name,
            "description": "",
            "icon": "",
            "created_at": self._stamp(org.created_at),
            "updated_at": self._stamp(org.created_at),
            "is_default": True,
        }

    def buildinfo(self, base_url: str) -> dict[str, Any]:
        return {
            "external_url": "https://github.com/coder/coder/commit/3b3d2a5",
            "version": SERVER_VERSION,
            "dashboard_url": base_url,
            "telemetry": False,
            "workspace_proxy": False,
            "agent_api_version": AGENT_API_VERSION,
            "provisioner_api_version": PROVISIONER_API_VERSION,
            "upgrade_message": "",
            "deployment_id": self.state.deployment_id,
            "webpush_public_key": "",
        }

    def _user_ref(self, user_id: str) -> dict[str, Any]:
        user = self.state.users[user_id]
        return {"id": user.id, "username": user.username, "avatar_url": "", "name": user.name}

    # -- templates ---------------------------------------------------------------------------------

    def template(self, template: TemplateRecord) -> dict[str, Any]:
        config = template.config
        active = self.state.versions[template.active_version_id].config
        start_ms = round((active.queue_seconds + active.build_seconds) * MS_PER_SECOND)
        stop_ms = round((active.queue_seconds + active.stop_seconds) * MS_PER_SECOND)
        creator = self.state.users[template.created_by]
        return {
            "id": template.id,
            "created_at": self._stamp(template.created_at),
            "updated_at": self._stamp(template.updated_at),
            "organization_id": template.organization_id,
            "organization_name": self.state.organization.name,
            "organization_display_name": self.state.organization.display_name,
            "organization_icon": "",
            "name": config.name,
            "display_name": config.display_name,
            "provisioner": "terraform",
            "active_version_id": template.active_version_id,
            "active_user_count": 0,
            "build_time_stats": {
                "start": {"P50": start_ms, "P95": start_ms},
                "stop": {"P50": stop_ms, "P95": stop_ms},
                "delete": {"P50": stop_ms, "P95": stop_ms},
            },
            "description": config.description,
            "deprecated": bool(config.deprecation_message),
            "deprecation_message": config.deprecation_message,
            "icon": config.icon,
            "default_ttl_ms": 0,
            "activity_bump_ms": _ACTIVITY_BUMP_MS,
            "autostop_requirement": {"days_of_week": [], "weeks": 1},
            "autostart_requirement": {
                "days_of_week": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
            },
            "created_by_id": creator.id,
            "created_by_name": creator.username,
            "allow_user_autostart": True,
            "allow_user_autostop": True,
            "allow_user_cancel_workspace_jobs": config.allow_user_cancel_workspace_jobs,
            "failure_ttl_ms": 0,
            "time_til_dormant_ms": 0,
            "time_til_dormant_autodelete_ms": 0,
            "require_active_version": config.require_active_version,
            "max_port_share_level": "owner",
            "cors_behavior": "simple",
            "use_classic_parameter_flow": False,
        }

    def template_version(self, version: VersionRecord) -> dict[str, Any]:
        template = self.state.templates[version.template_id]
        job = self.state.import_job(version, self.now)
        return {
            "id": version.id,
            "template_id": version.template_id,
            "organization_id": template.organization_id,
            "created_at": self._stamp(version.created_at),
            "updated_at": self._stamp(version.created_at),
            "name": version.config.name,
            "message": version.config.message,
            "job": self._job(
                job,
                version.job_id,
                file_id=version.file_id,
                kind="template_version_import",
                job_input={"template_version_id": version.id},
                metadata={"template_version_name": version.config.name, "template_id": template.id},
                initiator_id=template.created_by,
            ),
            "readme": "",
            "created_by": self._user_ref(template.created_by),
            "archived": version.config.archived,
            "warnings": [],
            "matched_provisioners": self._provisioners(job),
            "has_external_agent": False,
        }

    def rich_parameter(self, parameter: FakeParameter) -> dict[str, Any]:
        form_type = _FORM_TYPES.get(parameter.type, "dropdown" if parameter.options else "input")
        return {
            "name": parameter.name,
            "display_name": parameter.display_name,
            "description": parameter.description,
            "description_plaintext": parameter.description,
            "type": parameter.type,
            "form_type": form_type,
            "mutable": parameter.mutable,
            "default_value": parameter.default_value or "",
            "icon": "",
            "options": [{"name": value, "description": "", "value": value, "icon": ""} for value in parameter.options],
            "required": parameter.required,
            "ephemeral": False,
        }

    def preset(self, preset: FakePreset, preset_id: str) -> dict[str, Any]:
        return {
            "ID": preset_id,
            "Name": preset.name,
            "Parameters": [{"Name": name, "Value": value} for name, value in preset.parameters.items()],
            "Default": preset.default,
            "DesiredPrebuildInstances": None,
            "Description": preset.description,
            "Icon": "",
        }

    def _job(
        self,
        job: JobView,
        job_id: str,
        *,
        file_id: str,
        kind: str,
        job_input: dict[str, str],
        metadata: dict[str, str],
        initiator_id: str,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"id": job_id, "created_at": self._stamp(job.created_at)}
        optional = {
            "started_at": self._maybe(job.started_at),
            "completed_at": self._maybe(job.completed_at),
            "canceled_at": self._maybe(job.canceled_at),
            "error": job.error,
            "error_code": job.error_code,
        }
        body.update({key: value for key, value in optional.items() if value})
        pending = job.status == "pending"
        body.update(
            {
                "status": job.status,
                "file_id": file_id,
                "tags": {"owner": "", "scope": "organization"},
                "queue_position": 1 if pending else 0,
                "queue_size": 1 if pending else 0,
                "organization_id": self.state.organization.id,
                "initiator_id": initiator_id,
                "input": job_input,
                "type": kind,
                "available_workers": [],
                "metadata": metadata,
                "logs_overflowed": False,
            }
        )
        if job.started_at is not None:
            body["worker_id"] = self.state.deployment_id
            body["worker_name"] = "provisionerd-0"
        return body

    def _provisioners(self, job: JobView) -> dict[str, Any]:
        # The provisioner was last seen at the job's latest event, so nothing changes while nothing happens.
        seen = job.completed_at or job.started_at or job.created_at
        return {"count": 1, "available": 1, "most_recently_seen": self._stamp(seen)}
