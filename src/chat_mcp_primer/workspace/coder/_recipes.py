"""Build choreography shared by the chat tools and the CLI: settle, build when idle, stop, update."""

from __future__ import annotations

import contextlib

from chat_mcp_primer.clock import Clock
from chat_mcp_primer.workspace.coder._client import CoderClient
from chat_mcp_primer.workspace.coder._domain import JobStatus, Transition, Workspace, WorkspaceBuild
from chat_mcp_primer.workspace.coder._errors import (
    BuildActiveError,
    BuildError,
    CoderNotFoundError,
    CoderValidationError,
)
from chat_mcp_primer.workspace.coder._readiness import ReadinessSettings, wait_for_build


def is_running(workspace: Workspace) -> bool:
    build = workspace.latest_build
    return build.transition is Transition.START and build.job.status is JobStatus.SUCCEEDED


def is_stopped(workspace: Workspace) -> bool:
    build = workspace.latest_build
    return build.transition is Transition.STOP and build.job.status is JobStatus.SUCCEEDED


async def settle(client: CoderClient, workspace: Workspace, clock: Clock, readiness: ReadinessSettings) -> Workspace:
    """Wait for the workspace's active build, if any, and return the workspace as it is then.

    A failed or canceled build is fine here: it is history, and the caller decides what comes next.
    """
    build = workspace.latest_build
    if build.job.status.active:
        with contextlib.suppress(BuildError):
            await wait_for_build(client, build, clock, readiness)
        workspace = await client.workspace(workspace.id)
    return workspace


async def build_when_idle(
    client: CoderClient,
    workspace: Workspace,
    transition: Transition,
    clock: Clock,
    readiness: ReadinessSettings,
    *,
    template_version_id: str | None = None,
) -> WorkspaceBuild:
    """Start a build; on 409 "build already active", wait for the active build and try once more."""
    try:
        return await client.create_build(workspace.id, transition, template_version_id=template_version_id)
    except BuildActiveError:
        await settle(client, await client.workspace(workspace.id), clock, readiness)
        return await client.create_build(workspace.id, transition, template_version_id=template_version_id)


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
