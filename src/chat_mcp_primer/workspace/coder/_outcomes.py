"""What a lifecycle operation did, as typed data, and the observer that hears its progress as it happens.

`CoderLifecycle` returns a `LifecycleOutcome`; callers render it (the tools as a result object, the
``update-workspace`` command as a report) and never parse a string back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Protocol

from chat_mcp_primer.workspace.coder._domain import Transition, Workspace, WorkspaceAgent, WorkspaceBuild
from chat_mcp_primer.workspace.coder._readiness import AgentReadiness


class Operation(StrEnum):
    CREATE = "create"
    START = "start"
    STOP = "stop"
    RESTART = "restart"
    UPDATE = "update"
    DELETE = "delete"


class Action(StrEnum):
    """What the operation did (or was doing when it failed)."""

    # It failed before it changed or waited for anything.
    NOTHING = "nothing"
    CREATED = "created"
    STARTED = "started"
    # A start build was already in progress: the operation waited for it instead of posting another.
    ALREADY_BUILDING = "already_building"
    # The workspace already ran: no build, but its agent was waited for all the same.
    ALREADY_RUNNING = "already_running"
    STOPPED = "stopped"
    ALREADY_STOPPED = "already_stopped"
    RESTARTED = "restarted"
    UPDATED = "updated"
    # The workspace already ran the target version: no build, its agent waited for as when already running.
    UP_TO_DATE = "up_to_date"
    DELETED = "deleted"


class FailureKind(StrEnum):
    """Why an operation did not succeed. A failure the caller can act on; Coder's errors (a rejected
    token, an unreachable deployment) are raised instead, as `CoderError`."""

    # The workspace is gone (deleted, or no longer found by its id).
    DELETED = "deleted"
    # create: the chat's workspace exists but is stopped or failed, so it is neither reused nor replaced.
    NOT_RUNNING = "not_running"
    # update: the target version is missing, of another template, failed or still importing.
    VERSION_REFUSED = "version_refused"
    # Someone else's build was still active when its budget ran out.
    STILL_BUILDING = "still_building"
    BUILD_FAILED = "build_failed"
    BUILD_CANCELED = "build_canceled"
    BUILD_TIMEOUT = "build_timeout"


@dataclass(frozen=True, slots=True)
class Failure:
    """Why the operation stopped; for a build, which one (its id and transition) and Coder's job error."""

    kind: FailureKind
    # One line, never a secret: a refusal's reason, or the build error's text ("build failed").
    message: str
    build_id: str | None = None
    transition: Transition | None = None
    job_error: str | None = None
    error_code: str | None = None

    @property
    def of_build(self) -> bool:
        """Whether a build of this operation did not succeed (failed, canceled or timed out)."""
        return self.kind in _BUILD_FAILURES


_BUILD_FAILURES = frozenset({FailureKind.BUILD_FAILED, FailureKind.BUILD_CANCELED, FailureKind.BUILD_TIMEOUT})


@dataclass(frozen=True, slots=True)
class CreateRequest:
    """A workspace to create: its name, template, parameter values (as Coder takes them) and preset."""

    name: str
    template_id: str
    parameters: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    preset_id: str | None = None


@dataclass(frozen=True, slots=True)
class LifecycleOutcome:
    """The result of one operation.

    ``workspace`` is the workspace as last read (None only when it could not be read at all);
    ``build`` the build the operation ends on (the one it posted, joined or found running); ``stop_build``
    the stop a restart or an update posted; ``agent`` and ``readiness`` the chat's agent and how the
    wait for it ended (None when the operation never reached the agent); ``template_version_id`` the
    version an update targets or a start moved to (``moved_to_active_version``, when the template
    requires its active version).
    """

    operation: Operation
    action: Action
    workspace: Workspace | None = None
    build: WorkspaceBuild | None = None
    stop_build: WorkspaceBuild | None = None
    agent: WorkspaceAgent | None = None
    readiness: AgentReadiness | None = None
    template_version_id: str | None = None
    moved_to_active_version: bool = False
    failure: Failure | None = None

    @property
    def ok(self) -> bool:
        """No failure. The agent's readiness is reported, not judged: a start whose agent is not ready is ok."""
        return self.failure is None


class LifecycleObserver(Protocol):
    """Hears an operation's progress as it happens, in this order: ``version_chosen`` (update),
    ``awaiting_build`` (someone else's build, waited for before acting), ``build_joined`` (a start in
    progress, adopted) or ``build_posted`` (each build the operation made, stop before start), each build
    waited for followed by its ``build_progress``; ``agent_selected``, its ``agent_progress``, with
    ``agent_connected`` (when it connects, before its startup scripts are waited for) right after the
    progress that shows it connected, then ``agent_waited`` once the wait for that agent ended, whatever
    its outcome.

    Subclass it and override what you need; every method does nothing by default. Methods must not block.
    """

    def version_chosen(self, workspace: Workspace, version_id: str) -> None:
        return None

    def awaiting_build(self, workspace: Workspace, build: WorkspaceBuild) -> None:
        return None

    def build_joined(self, workspace: Workspace, build: WorkspaceBuild) -> None:
        return None

    def build_posted(self, workspace: Workspace, build: WorkspaceBuild) -> None:
        return None

    def build_progress(self, workspace: Workspace, build: WorkspaceBuild) -> None:
        """The waited build's job status (``build.job.status``: pending is queued, then running or
        canceling, then how it ended) as first seen and each time it changes; a poll that reads the same
        status, or ``unknown``, says nothing."""
        return None

    def agent_selected(self, workspace: Workspace, build: WorkspaceBuild, agent: WorkspaceAgent) -> None:
        return None

    def agent_progress(self, workspace: Workspace, agent: WorkspaceAgent) -> None:
        """The waited agent's ``status`` (connecting, connected, timeout, disconnected) and
        ``lifecycle_state`` (created, starting: its startup scripts run, ready, or how they failed) as first
        seen and each time either changes; a probe that reads the same pair says nothing."""
        return None

    def agent_connected(self, workspace: Workspace, agent: WorkspaceAgent) -> None:
        return None

    def agent_waited(self, agent: WorkspaceAgent, readiness: AgentReadiness, *, fresh: bool) -> None:
        """``fresh`` is False when the operation found the agent's build running or in progress rather
        than making it."""
        return None


class SilentObserver(LifecycleObserver):
    """Hears nothing: for callers that only want the outcome."""
