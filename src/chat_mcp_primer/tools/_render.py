"""The one renderer from lifecycle outcomes to the result objects the workspace tools answer with.

The keys are the reference's (``created``, ``started``, ..., ``workspace_name``, ``build_id``, ``error``,
``agent_status``, ``startup_scripts``); the chat's tools and ``serve-mcp``'s answer alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chat_mcp_primer.tools.descriptions import BUILD_CONTINUES, Subject
from chat_mcp_primer.workspace.coder import (
    Action,
    Failure,
    FailureKind,
    LifecycleOutcome,
    Operation,
    Template,
    Transition,
    Workspace,
    WorkspaceAgent,
    is_mcp_app,
    server_name,
)

Result = dict[str, Any]
"""A tool's result object; ``error`` present exactly when the call failed."""

# The key that says whether each operation did what was asked.
_DONE_KEY = {
    Operation.CREATE: "created",
    Operation.START: "started",
    Operation.STOP: "stopped",
    Operation.RESTART: "restarted",
    Operation.UPDATE: "updated",
    Operation.DELETE: "deleted",
}
# Keys that say the operation found the work already done (or in progress) instead of doing it.
_ACTION_FLAGS = {
    Action.ALREADY_BUILDING: "already_building",
    Action.ALREADY_RUNNING: "already_running",
    Action.ALREADY_STOPPED: "no_build",
    Action.UP_TO_DATE: "up_to_date",
}
MOVED_TO_ACTIVE_VERSION = "The template requires its active version, so the workspace was updated to it."


# Only the chat can lack a workspace: serve-mcp's tools are always given one.
NO_WORKSPACE = "This chat has no workspace yet; use create_workspace first."


def render_outcome(outcome: LifecycleOutcome, subject: Subject) -> Result:
    """The result object for ``outcome``; ``error`` exactly when it failed."""
    failure = outcome.failure
    if failure is not None and failure.kind is FailureKind.DELETED:
        return {"error": f"{subject.workspace_capitalized} was deleted; use create_workspace to make a new one."}
    done = outcome.ok and (outcome.operation is not Operation.CREATE or outcome.action is Action.CREATED)
    result: Result = {_DONE_KEY[outcome.operation]: done}
    if outcome.workspace is not None:
        result["workspace_name"] = outcome.workspace.name
    if outcome.action in _ACTION_FLAGS:
        result[_ACTION_FLAGS[outcome.action]] = True
    if outcome.moved_to_active_version:
        result.update(updated_to_active_version=True, message=MOVED_TO_ACTIVE_VERSION)
    if outcome.operation is Operation.UPDATE and outcome.template_version_id is not None:
        result["template_version_id"] = outcome.template_version_id
    if outcome.build is not None:
        result["build_id"] = outcome.build.id
    if failure is not None:
        result.update(_failure(failure, subject))
    elif outcome.readiness is not None:
        result.update(outcome.readiness.result_keys())
    return result


def render_in_progress(outcome: LifecycleOutcome, subject: Subject) -> Result:
    """The result object of an operation that answered without waiting for its build (``in_progress``):
    the build it posted or joined, with ``build_status`` as Coder last reported it."""
    result = render_outcome(outcome, subject)
    result.update(in_progress=True, message=BUILD_CONTINUES)
    if outcome.build is not None:
        result["build_status"] = outcome.build.status.value
    return result


def _failure(failure: Failure, subject: Subject) -> Result:
    if failure.kind is FailureKind.NOT_RUNNING:
        return {"error": f"{subject.workspace_capitalized} exists but is not running; use start_workspace."}
    result: Result = {"error": failure.message}
    if failure.of_build:
        # A build that did not succeed: its id kept so a UI can show its logs.
        result["build_id"] = failure.build_id
        if failure.transition is Transition.STOP:
            result["error"] = f"stopping the workspace failed: {failure.message}"
    if failure.job_error:
        result["job_error"] = failure.job_error
    if failure.error_code:
        result["error_code"] = failure.error_code
    return result


def render_templates(templates: Sequence[Template]) -> Result:
    """The templates a workspace may be created from, as tools answer: deprecated ones left out."""
    return {
        "templates": [
            {
                "id": template.id,
                "name": template.name,
                "display_name": template.display_name,
                "description": template.description,
                "active_version_id": template.active_version_id,
            }
            for template in templates
            if not template.deprecated
        ]
    }


def render_status(workspace: Workspace) -> Result:
    """The workspace as it is now: its build, template and version, agents and their MCP apps."""
    build = workspace.latest_build
    result: Result = {
        "workspace_id": workspace.id,
        "workspace_name": workspace.name,
        "owner_name": workspace.owner_name,
        "status": build.status.value,
        "transition": build.transition.value,
        "job_status": build.job.status.value,
        "build_id": build.id,
        "template_id": workspace.template_id,
        "template_name": workspace.template_name,
        "template_version_id": build.template_version_id,
        "template_active_version_id": workspace.template_active_version_id,
        "outdated": workspace.outdated,
        "agents": [_agent_status(agent) for agent in build.agents],
    }
    if build.job.error:
        result["job_error"] = build.job.error
    if build.job.error_code:
        result["error_code"] = build.job.error_code
    return result


def _agent_status(agent: WorkspaceAgent) -> Result:
    return {
        "id": agent.id,
        "name": agent.name,
        "parent_id": agent.parent_id,
        "status": agent.status.value,
        "lifecycle_state": agent.lifecycle_state.value,
        "mcp_apps": [
            {"slug": app.slug, "server": server_name(app.slug), "health": app.health.value}
            for app in agent.apps
            if is_mcp_app(app)
        ],
    }
