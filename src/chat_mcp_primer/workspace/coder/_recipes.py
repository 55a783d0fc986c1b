"""Small steps the lifecycle operations are made of: a workspace's state, a version check, a build's failure."""

from __future__ import annotations

from chat_mcp_primer.workspace.coder._client import CoderClient
from chat_mcp_primer.workspace.coder._domain import JobStatus, Transition, Workspace, WorkspaceBuild
from chat_mcp_primer.workspace.coder._errors import (
    BuildCanceledError,
    BuildError,
    BuildTimeoutError,
    CoderNotFoundError,
    CoderValidationError,
)
from chat_mcp_primer.workspace.coder._outcomes import Failure, FailureKind


def is_running(workspace: Workspace) -> bool:
    build = workspace.latest_build
    return build.transition is Transition.START and build.job.status is JobStatus.SUCCEEDED


def is_stopped(workspace: Workspace) -> bool:
    build = workspace.latest_build
    return build.transition is Transition.STOP and build.job.status is JobStatus.SUCCEEDED


def describe_build(build: WorkspaceBuild) -> str:
    """``start build #3``: a build as people name it."""
    return f"{build.transition.value} build #{build.build_number}"


async def active_version(client: CoderClient, workspace: Workspace) -> str:
    """The template's active version. Coder before v2.1 does not name it on the workspace: the template does."""
    if workspace.template_active_version_id:
        return workspace.template_active_version_id
    return (await client.template(workspace.template_id)).active_version_id


async def version_refusal(client: CoderClient, workspace: Workspace, version_id: str) -> str | None:
    """Why ``workspace`` cannot move to template version ``version_id``, or None when it can."""
    try:
        version = await client.template_version(version_id)
    except (CoderNotFoundError, CoderValidationError):
        return f"template version {version_id!r} does not exist"
    if version.template_id != workspace.template_id:
        return f"template version {version_id!r} belongs to another template"
    if version.job.status is JobStatus.FAILED:
        return f"template version {version_id!r} failed to import"
    if version.job.status is not JobStatus.SUCCEEDED:
        return f"template version {version_id!r} is still importing; try again shortly"
    return None


def build_failure(exc: BuildError, transition: Transition) -> Failure:
    """A build that did not succeed, as a failure; its id kept so a UI can show its logs."""
    kind = FailureKind.BUILD_FAILED
    if isinstance(exc, BuildTimeoutError):
        kind = FailureKind.BUILD_TIMEOUT
    elif isinstance(exc, BuildCanceledError):
        kind = FailureKind.BUILD_CANCELED
    return Failure(
        kind,
        str(exc),
        build_id=exc.build_id,
        transition=transition,
        job_error=exc.job_error,
        error_code=exc.error_code,
    )
