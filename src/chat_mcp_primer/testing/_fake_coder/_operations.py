"""The writes the API offers: create a workspace, create a build, cancel a build.

Each checks what coderd checks, in coderd's order (``createWorkspace``, ``wsbuilder``,
``patchCancelWorkspaceBuild``), so a request with several problems gets the same error a real server
gives. Nothing is written unless every check passes. Call with the state's lock held.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from chat_mcp_primer.testing._fake_coder._body import name_is_valid, validation_failed
from chat_mcp_primer.testing._fake_coder._lifecycle import is_deleted, job_view
from chat_mcp_primer.testing._fake_coder._params import matching_preset_id, preset_for, resolve_parameters
from chat_mcp_primer.testing._fake_coder._records import (
    TRANSITIONS,
    BuildRecord,
    TemplateRecord,
    Transition,
    UserRecord,
    VersionRecord,
    WorkspaceRecord,
)
from chat_mcp_primer.testing._fake_coder._state import CoderState
from chat_mcp_primer.testing._fake_coder._wire import NIL_UUID, ApiError, go_quote

# Coder's bounds on a workspace's time-to-shutdown (`ttlMinimum`, `ttlMaximum`), compared after truncating
# to whole minutes.
_MS_PER_MINUTE = 60_000
_TTL_MIN_MS = _MS_PER_MINUTE
_TTL_MAX_MS = 30 * 24 * 60 * _MS_PER_MINUTE
_AUTOMATIC_UPDATES = frozenset({"always", "never"})
# `codersdk.CreateWorkspaceBuildReason`: the reasons a client may give for a start or stop.
_CLIENT_REASONS = frozenset({"dashboard", "cli", "ssh_connection", "vscode_connection", "jetbrains_connection"})
# A weekly cron schedule: minute hour day-of-month month day-of-week.
_CRON_FIELDS = 5
_EXPECTABLE_STATUSES = frozenset({"running", "pending"})


def create_workspace(state: CoderState, viewer: UserRecord, owner: UserRecord, body: dict[str, Any]) -> WorkspaceRecord:
    """A new workspace of ``owner`` and its first (start) build, or the `ApiError` coderd would send."""
    name = body.get("name", "")
    if not name_is_valid(name):
        raise validation_failed("name", "workspace_name", name)
    template = _request_template(state, body)
    if owner.id != viewer.id and not viewer.admin:
        raise ApiError(
            403,
            "Unauthorized to create workspace.",
            detail="You are unable to create a workspace in this organization. It is possible to have access to "
            "the template, but not be able to create a workspace. Please contact an administrator about your "
            "permissions if you feel this is an error.",
        )
    if template.config.deprecation_message:
        raise ApiError(
            400,
            f"Template {go_quote(template.name)} has been deprecated, and cannot be used to create a new workspace.",
            detail=template.config.deprecation_message,
        )
    autostart_schedule = body.get("autostart_schedule") or None
    if autostart_schedule is not None:
        _check_schedule(autostart_schedule)
    ttl_ms = _ttl_ms(body.get("ttl_ms"))
    automatic_updates = body.get("automatic_updates") or "never"
    if automatic_updates not in _AUTOMATIC_UPDATES:
        raise ApiError(
            400,
            "Invalid Workspace Automatic Updates setting.",
            validations=[("automatic_updates", f"invalid automatic update option {go_quote(automatic_updates)}")],
        )
    if state.workspace_by_name(owner, name, include_deleted=False) is not None:
        raise ApiError(
            409,
            f"Workspace {go_quote(name)} already exists.",
            validations=[("name", "This value is already in use and should be unique.")],
        )
    version_id = body.get("template_version_id") or template.active_version_id
    version = _version_for_build(state, viewer, template, version_id, explicit="template_version_id" in body)
    requested = body.get("rich_parameter_values", [])
    preset_id = body.get("template_version_preset_id") or matching_preset_id(version, requested)
    preset = preset_for(version, preset_id) if preset_id else None
    parameters = resolve_parameters(version, requested, {}, preset)
    workspace = state.insert_workspace(
        name=name,
        owner=owner,
        template=template,
        created_at=state.now(),
        ttl_ms=ttl_ms,
        autostart_schedule=autostart_schedule,
        automatic_updates=automatic_updates,
    )
    _insert_api_build(state, workspace, "start", version, viewer, "initiator", parameters, preset_id)
    return workspace


def create_build(
    state: CoderState, viewer: UserRecord, workspace: WorkspaceRecord, body: dict[str, Any]
) -> BuildRecord:
    """A new build of ``workspace``, or the `ApiError` coderd would send (409 while a build is active)."""
    transition = body.get("transition", "")
    if transition not in TRANSITIONS:
        raise validation_failed("transition", "oneof", transition)
    reason = body.get("reason", "")
    if reason and reason not in _CLIENT_REASONS:
        raise validation_failed("reason", "oneof", reason)
    if is_deleted(workspace, state.now()) and transition != "delete":
        raise ApiError(
            409,
            f"Cannot {transition} a deleted workspace!",
            detail="This workspace has been deleted and cannot be modified.",
        )
    if body.get("orphan") and transition != "delete":
        raise ApiError(400, "Orphan is only permitted when deleting a workspace.")
    template = state.templates[workspace.template_id]
    previous = workspace.latest_build
    explicit = "template_version_id" in body
    if explicit:
        version_id = body["template_version_id"]
    elif transition == "start" and template.config.require_active_version:
        version_id = template.active_version_id
    else:
        version_id = previous.version_id
    version = _version_for_build(state, viewer, template, version_id, explicit=explicit, transition=transition)
    if job_view(previous.job, state.now()).active:
        message = "A workspace build is already active."
        raise ApiError(409, message, detail=message)
    preset_id = body.get("template_version_preset_id") or None
    preset = preset_for(version, preset_id) if preset_id else None
    parameters = resolve_parameters(version, body.get("rich_parameter_values", []), dict(previous.parameters), preset)
    build_reason = reason if transition in ("start", "stop") and reason else "initiator"
    return _insert_api_build(state, workspace, transition, version, viewer, build_reason, parameters, preset_id)


def cancel_build(state: CoderState, viewer: UserRecord, build: BuildRecord, expect_status: str) -> None:
    """Mark the build's job canceled: at once if it was still pending, after the provisioner acknowledges
    if it was running."""
    if expect_status and expect_status not in _EXPECTABLE_STATUSES:
        raise ApiError(
            400, f"Invalid expect_status {go_quote(expect_status)}. Only 'running' or 'pending' are allowed."
        )
    template = state.templates[state.workspaces[build.workspace_id].template_id]
    allowed = expect_status == "pending" or template.config.allow_user_cancel_workspace_jobs or viewer.admin
    if not allowed:
        raise ApiError(403, "User is not allowed to cancel workspace builds. Owner role is required.")
    now = state.now()
    job = job_view(build.job, now)
    if job.completed_at is not None:
        raise ApiError(400, "Job has already completed!")
    if job.canceled_at is not None:
        raise ApiError(400, "Job has already been marked as canceled!")
    if expect_status and job.status != expect_status:
        raise ApiError(412, "Job is not in the expected state.")
    build.job = dataclasses.replace(build.job, canceled_at=now)
    state.touch()


def _request_template(state: CoderState, body: dict[str, Any]) -> TemplateRecord:
    """coderd's ``requestTemplate``: the template named by id, or by the version given instead."""
    template_id = body.get("template_id")
    if template_id is None:
        version_id = body.get("template_version_id", NIL_UUID)
        version = state.versions.get(version_id)
        if version is None:
            raise ApiError(
                400,
                f"Template version {go_quote(version_id)} doesn't exist.",
                validations=[("template_version_id", "template not found")],
            )
        if version.config.archived:
            raise ApiError(
                500,
                "Archived template versions cannot be used to make a workspace.",
                validations=[("template_version_id", "template version archived")],
            )
        template_id = version.template_id
    template = state.templates.get(template_id)
    if template is None:
        raise ApiError(
            400,
            f"Template {go_quote(template_id)} doesn't exist.",
            validations=[("template_id", "template not found")],
        )
    if template.deleted:
        raise ApiError(404, f"Template {go_quote(template.name)} has been deleted!")
    return template


def _version_for_build(
    state: CoderState,
    viewer: UserRecord,
    template: TemplateRecord,
    version_id: str,
    *,
    explicit: bool,
    transition: Transition = "start",
) -> VersionRecord:
    """wsbuilder's checks on the version a build would use: it exists, belongs to the template, may be used
    (templates that require the active version), and has finished importing successfully."""
    version = state.versions.get(version_id)
    if version is None:
        raise ApiError(
            400,
            "template version does not exist",
            detail=f"get template version {version_id}: sql: no rows in result set",
        )
    if version.template_id != template.id:
        raise ApiError(
            400,
            "template version doesn't match template",
            detail=f"templateVersion.TemplateID = {version.template_id}, template.ID = {template.id}",
        )
    if (
        explicit
        and transition == "start"
        and template.config.require_active_version
        and version.id != template.active_version_id
        and not viewer.admin
    ):
        raise ApiError(403, "cannot use non-active version", detail="The template requires the active version.")
    job = state.import_job(version, state.now())
    if job.status in ("pending", "running"):
        message = f"The provided template version is {job.status}. Wait for it to complete importing!"
        raise ApiError(406, message, detail=message)
    if job.status in ("failed", "canceled"):
        message = (
            f"The provided template version {go_quote(version.config.name)} has failed to import: "
            f"{go_quote(job.error or '')}. You cannot build workspaces with it!"
        )
        raise ApiError(400, message, detail=message)
    return version


def _insert_api_build(
    state: CoderState,
    workspace: WorkspaceRecord,
    transition: Transition,
    version: VersionRecord,
    initiator: UserRecord,
    reason: str,
    parameters: Sequence[tuple[str, str]],
    preset_id: str | None,
) -> BuildRecord:
    fault = state.faults.take_build_fault(transition)
    build = state.insert_build(
        workspace,
        transition,
        version,
        initiator=initiator,
        created_at=state.now(),
        reason=reason,
        parameters=parameters,
        preset_id=preset_id,
        failure=fault.failure if fault is not None else None,
        stall=fault.stall if fault is not None else False,
    )
    state.builds_created += 1
    return build


def _ttl_ms(value: int | None) -> int | None:
    if not value:
        return None
    truncated = value - value % _MS_PER_MINUTE
    if truncated < _TTL_MIN_MS:
        detail = "time until shutdown must be at least one minute"
    elif truncated > _TTL_MAX_MS:
        detail = "time until shutdown must be less than 30 days"
    else:
        return truncated
    raise ApiError(400, "Invalid Workspace Time to Shutdown.", validations=[("ttl_ms", detail)])


def _check_schedule(schedule: str) -> None:
    spec = schedule
    if spec.startswith("CRON_TZ="):
        _, _, spec = spec.partition(" ")
    fields = spec.split()
    if len(fields) != _CRON_FIELDS:
        detail = f"parse schedule: expected exactly {_CRON_FIELDS} fields, found {len(fields)}: {fields}"
    elif fields[2] != "*" or fields[3] != "*":
        detail = "validate weekly schedule: expected day-of-month and month to be *"
    else:
        return
    raise ApiError(400, "Invalid Autostart Schedule.", validations=[("schedule", detail)])
