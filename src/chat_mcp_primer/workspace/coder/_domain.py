"""Coder's vocabulary as typed, immutable data parsed from the REST API's JSON."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from chat_mcp_primer.workspace.coder._errors import CoderProtocolError


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    CANCELING = "canceling"
    CANCELED = "canceled"
    FAILED = "failed"
    # Coder's answer when it cannot tell (the job's provisioner daemon went away mid-job, say).
    UNKNOWN = "unknown"

    @property
    def active(self) -> bool:
        return self in (JobStatus.PENDING, JobStatus.RUNNING, JobStatus.CANCELING)


class Transition(StrEnum):
    START = "start"
    STOP = "stop"
    DELETE = "delete"


class BuildStatus(StrEnum):
    PENDING = "pending"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"
    CANCELING = "canceling"
    CANCELED = "canceled"
    DELETING = "deleting"
    DELETED = "deleted"


class AgentStatus(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    TIMEOUT = "timeout"


class LifecycleState(StrEnum):
    CREATED = "created"
    STARTING = "starting"
    START_TIMEOUT = "start_timeout"
    START_ERROR = "start_error"
    READY = "ready"
    SHUTTING_DOWN = "shutting_down"
    SHUTDOWN_TIMEOUT = "shutdown_timeout"
    SHUTDOWN_ERROR = "shutdown_error"
    OFF = "off"


class AppHealth(StrEnum):
    DISABLED = "disabled"
    INITIALIZING = "initializing"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


def _field(data: Mapping[str, Any], name: str, kind: type, what: str) -> Any:
    value = data.get(name)
    if not isinstance(value, kind):
        raise CoderProtocolError(f"{what}: field {name!r} is missing or not a {kind.__name__}")
    return value


def _optional_str(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    return value if isinstance(value, str) and value else None


def _enum(kind: type[StrEnum], data: Mapping[str, Any], name: str, what: str) -> Any:
    raw = _field(data, name, str, what)
    try:
        return kind(raw)
    except ValueError:
        raise CoderProtocolError(f"{what}: unknown {name} {raw!r}") from None


def _objects(data: Mapping[str, Any], name: str, what: str) -> list[Mapping[str, Any]]:
    value = data.get(name) or []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise CoderProtocolError(f"{what}: field {name!r} is not a list of objects")
    return value


@dataclass(frozen=True, slots=True)
class ProvisionerJob:
    id: str
    status: JobStatus
    error: str | None = None
    error_code: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProvisionerJob:
        return cls(
            id=_field(data, "id", str, "job"),
            status=_enum(JobStatus, data, "status", "job"),
            error=_optional_str(data, "error"),
            error_code=_optional_str(data, "error_code"),
        )


@dataclass(frozen=True, slots=True)
class WorkspaceApp:
    id: str
    slug: str
    display_name: str
    url: str | None
    health: AppHealth
    hidden: bool = False
    external: bool = False
    # Served at its own host under the deployment's wildcard access URL rather than under a path;
    # ``subdomain_name`` is the host's first label as coderd computes it (empty from releases that
    # do not send it, or when the deployment has no wildcard).
    subdomain: bool = False
    subdomain_name: str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WorkspaceApp:
        health = data.get("health") or "disabled"
        try:
            parsed_health = AppHealth(health)
        except ValueError:
            raise CoderProtocolError(f"app: unknown health {health!r}") from None
        return cls(
            id=_field(data, "id", str, "app"),
            slug=_field(data, "slug", str, "app"),
            display_name=str(data.get("display_name") or ""),
            url=_optional_str(data, "url"),
            health=parsed_health,
            hidden=bool(data.get("hidden", False)),
            external=bool(data.get("external", False)),
            subdomain=bool(data.get("subdomain", False)),
            subdomain_name=str(data.get("subdomain_name") or ""),
        )


@dataclass(frozen=True, slots=True)
class WorkspaceAgent:
    id: str
    name: str
    status: AgentStatus
    lifecycle_state: LifecycleState
    parent_id: str | None = None
    apps: tuple[WorkspaceApp, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WorkspaceAgent:
        return cls(
            id=_field(data, "id", str, "agent"),
            name=_field(data, "name", str, "agent"),
            status=_enum(AgentStatus, data, "status", "agent"),
            lifecycle_state=_enum(LifecycleState, data, "lifecycle_state", "agent"),
            parent_id=_optional_str(data, "parent_id"),
            apps=tuple(WorkspaceApp.from_json(app) for app in _objects(data, "apps", "agent")),
        )


@dataclass(frozen=True, slots=True)
class WorkspaceBuild:
    id: str
    workspace_id: str
    workspace_name: str
    workspace_owner_name: str
    build_number: int
    transition: Transition
    status: BuildStatus
    template_version_id: str
    job: ProvisionerJob
    agents: tuple[WorkspaceAgent, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WorkspaceBuild:
        job = data.get("job")
        if not isinstance(job, dict):
            raise CoderProtocolError("build: field 'job' is missing or not an object")
        agents = [
            WorkspaceAgent.from_json(agent)
            for resource in _objects(data, "resources", "build")
            for agent in _objects(resource, "agents", "resource")
        ]
        number = data.get("build_number", 0)
        return cls(
            id=_field(data, "id", str, "build"),
            workspace_id=_field(data, "workspace_id", str, "build"),
            workspace_name=str(data.get("workspace_name") or ""),
            workspace_owner_name=str(data.get("workspace_owner_name") or ""),
            build_number=number if isinstance(number, int) else 0,
            transition=_enum(Transition, data, "transition", "build"),
            status=_enum(BuildStatus, data, "status", "build"),
            template_version_id=_field(data, "template_version_id", str, "build"),
            job=ProvisionerJob.from_json(job),
            agents=tuple(agents),
        )


@dataclass(frozen=True, slots=True)
class Workspace:
    id: str
    name: str
    owner_id: str
    owner_name: str
    organization_id: str
    template_id: str
    template_name: str
    template_active_version_id: str
    template_require_active_version: bool
    outdated: bool
    latest_build: WorkspaceBuild

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Workspace:
        build = data.get("latest_build")
        if not isinstance(build, dict):
            raise CoderProtocolError("workspace: field 'latest_build' is missing or not an object")
        return cls(
            id=_field(data, "id", str, "workspace"),
            name=_field(data, "name", str, "workspace"),
            owner_id=_field(data, "owner_id", str, "workspace"),
            owner_name=_field(data, "owner_name", str, "workspace"),
            organization_id=str(data.get("organization_id") or ""),
            template_id=_field(data, "template_id", str, "workspace"),
            template_name=str(data.get("template_name") or ""),
            template_active_version_id=str(data.get("template_active_version_id") or ""),
            template_require_active_version=bool(data.get("template_require_active_version", False)),
            outdated=bool(data.get("outdated", False)),
            latest_build=WorkspaceBuild.from_json(build),
        )


@dataclass(frozen=True, slots=True)
class Template:
    id: str
    name: str
    display_name: str
    organization_id: str
    active_version_id: str
    deprecated: bool = False
    require_active_version: bool = False
    description: str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Template:
        return cls(
            id=_field(data, "id", str, "template"),
            name=_field(data, "name", str, "template"),
            display_name=str(data.get("display_name") or ""),
            organization_id=str(data.get("organization_id") or ""),
            active_version_id=_field(data, "active_version_id", str, "template"),
            deprecated=bool(data.get("deprecated", False)),
            require_active_version=bool(data.get("require_active_version", False)),
            description=str(data.get("description") or ""),
        )


@dataclass(frozen=True, slots=True)
class TemplateVersion:
    id: str
    template_id: str | None
    name: str
    job: ProvisionerJob
    archived: bool = False

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TemplateVersion:
        job = data.get("job")
        if not isinstance(job, dict):
            raise CoderProtocolError("template version: field 'job' is missing or not an object")
        return cls(
            id=_field(data, "id", str, "template version"),
            template_id=_optional_str(data, "template_id"),
            name=str(data.get("name") or ""),
            job=ProvisionerJob.from_json(job),
            archived=bool(data.get("archived", False)),
        )


@dataclass(frozen=True, slots=True)
class User:
    id: str
    username: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> User:
        return cls(id=_field(data, "id", str, "user"), username=_field(data, "username", str, "user"))


@dataclass(frozen=True, slots=True)
class Preset:
    """A template version preset. The wire format capitalises its keys (``ID``, ``Name``, ...)."""

    id: str
    name: str
    parameters: Mapping[str, str]
    default: bool = False

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Preset:
        parameters = {str(p.get("Name")): str(p.get("Value")) for p in _objects(data, "Parameters", "preset")}
        return cls(
            id=_field(data, "ID", str, "preset"),
            name=_field(data, "Name", str, "preset"),
            parameters=parameters,
            default=bool(data.get("Default", False)),
        )
