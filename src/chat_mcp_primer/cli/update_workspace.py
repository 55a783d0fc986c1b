"""``chat-mcp-primer update-workspace``: move a Coder workspace onto a template version and wait until it is ready.

The recipe is Coder's own (its UI and CLI since mid-2025) and is `CoderLifecycle.update`, the one the chat's
``update_workspace`` tool runs: wait for any active build; if the workspace runs, stop it and wait for the
stop; start it on the target version and wait; then wait for its agent to connect and finish its startup
scripts. A version that cannot be built is refused before anything is built. A workspace already running
the target version is left alone ("up-to-date", as ``coder update`` says) unless the request forces the
update; its agent is still checked.

Three layers, each callable on its own:

- `update_workspace`: the lifecycle's update on a `CoderClient` (whose clock times every wait), with this
  command's budgets, its progress lines and its report. Coder's failures become the report's ``error``;
  only cancellation and bugs propagate.
- `execute`: runs the recipe with anyio on a fresh event loop and maps Ctrl-C to an interrupted report. The
  one place a clock other than `SystemClock` can be injected, for tests.
- the typer command: options, logging, the progress display, the output and the exit status.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from dataclasses import dataclass
from typing import Annotated, Any, Protocol, TextIO

import anyio
import structlog
import typer
from rich.console import Console
from rich.markup import escape
from rich.status import Status

from chat_mcp_primer.cli._app import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, LogLevel, app, configure_logging
from chat_mcp_primer.cli._options import CODER_URL_HELP, parse_coder_url, positive_seconds
from chat_mcp_primer.clock import Clock, SystemClock
from chat_mcp_primer.workspace.coder import (
    Action,
    AgentReadiness,
    AgentState,
    CoderAuthError,
    CoderClient,
    CoderError,
    CoderLifecycle,
    CoderNotFoundError,
    CoderPermissionError,
    CoderValidationError,
    CoderWorkspaceDeletedError,
    Failure,
    FailureKind,
    LifecycleObserver,
    ReadinessSettings,
    Transition,
    Workspace,
    WorkspaceAgent,
    WorkspaceBuild,
    describe_build,
)

_logger = structlog.get_logger("chat_mcp_primer.cli.update_workspace")

# The seed CLI's budgets, kept: a stop tears down less than a start creates, so it gets half as long.
DEFAULT_STOP_TIMEOUT = 60.0
DEFAULT_START_TIMEOUT = 120.0
# The chat tools' budget for an agent to connect after its build succeeded: the same promise on both paths.
DEFAULT_AGENT_TIMEOUT = ReadinessSettings().agent_online_timeout

# Fixed texts that scripts reading ``--json`` or stderr may match on.
REDACTED = "[redacted]"
INTERRUPTED = "interrupted"
TOKEN_REJECTED = "the session token was rejected"


class UpdateFailedError(Exception):
    """A step of the recipe did not succeed; the text is the reason a user reads (never a secret)."""

    def __init__(self, reason: str, *, job_error: str | None = None, error_code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.job_error = job_error
        self.error_code = error_code


@dataclass(frozen=True, slots=True)
class UpdateRequest:
    """Which workspace to update, to which version, within which budgets (seconds on the client's clock).

    Exactly one of ``workspace_id`` and ``workspace_name`` (compared case-insensitively among the caller's
    own workspaces); `ValueError` otherwise. Without ``template_version_id`` the target is the template's
    active version. Every budget must be positive. ``force`` rebuilds a workspace that already runs the
    target version.
    """

    workspace_id: str | None = None
    workspace_name: str | None = None
    template_version_id: str | None = None
    stop_timeout: float = DEFAULT_STOP_TIMEOUT
    start_timeout: float = DEFAULT_START_TIMEOUT
    agent_timeout: float = DEFAULT_AGENT_TIMEOUT
    force: bool = False

    def __post_init__(self) -> None:
        if (self.workspace_id is None) == (self.workspace_name is None):
            raise ValueError("give exactly one of workspace_id and workspace_name")
        for name in ("stop_timeout", "start_timeout", "agent_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"UpdateRequest.{name} must be positive")

    @property
    def workspace_ref(self) -> str:
        """The workspace as the user named it, for messages."""
        return self.workspace_name if self.workspace_name is not None else f"with id {self.workspace_id}"


@dataclass(slots=True)
class UpdateReport:
    """What the update did, filled in as it proceeds: a caller that was interrupted still learns which
    builds were made. ``ok`` is set only once the agent is ready (or the build has no agent), also when the
    workspace already ran the target version (``up_to_date``: nothing was built, the agent still checked);
    ``error`` is then None. Texts never contain the session token."""

    ok: bool = False
    interrupted: bool = False
    up_to_date: bool = False
    workspace_id: str | None = None
    workspace_name: str | None = None
    template_version_id: str | None = None
    stop_build_id: str | None = None
    start_build_id: str | None = None
    agent_id: str | None = None
    error: str | None = None
    job_error: str | None = None
    error_code: str | None = None

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_OK if self.ok else EXIT_FAILURE

    def as_json(self) -> dict[str, Any]:
        """The ``--json`` object: every field, ``null`` where unknown."""
        return dataclasses.asdict(self)


class Progress(Protocol):
    """Where the update announces its phases. A phase lasts until the next one begins."""

    def phase(self, description: str) -> None: ...


class SilentProgress:
    """Announces nothing."""

    def phase(self, description: str) -> None:
        pass


# -- the recipe -------------------------------------------------------------------------------------------


async def update_workspace(
    client: CoderClient,
    request: UpdateRequest,
    *,
    progress: Progress | None = None,
    report: UpdateReport | None = None,
) -> UpdateReport:
    """Update the workspace as the module describes, every wait on ``client.clock``, and return the report.

    Guarantees: nothing is built when the workspace cannot be found or the version is refused (missing,
    of another template, failed or still importing), nor when it already runs the target version and
    ``request.force`` is not set (``report.up_to_date``); no start build is made when the stop fails, is
    canceled or exceeds ``stop_timeout``; ``ok`` only after the start build succeeded within
    ``start_timeout`` (or nothing needed building) and its agent connected within ``agent_timeout`` and
    finished its startup scripts.
    Every Coder failure ends up in ``report.error`` (401 as "the session token was rejected"), with the
    build's ``job_error`` and ``error_code`` when a build failed. Cancellation propagates, leaving
    ``report`` as far as it got; pass your own ``report`` to read it then.
    """
    progress = progress or SilentProgress()
    report = report if report is not None else UpdateReport()
    try:
        await _run_recipe(client, request, progress, report)
    except UpdateFailedError as failure:
        _fail(report, client.token, failure.reason, job_error=failure.job_error, error_code=failure.error_code)
    except CoderAuthError:
        _fail(report, client.token, TOKEN_REJECTED)
    except CoderPermissionError as exc:
        _fail(report, client.token, f"the session token may not do this: {exc}")
    except CoderError as exc:
        _fail(report, client.token, str(exc))
    else:
        report.ok = True
        _logger.info("update_workspace.succeeded", workspace_id=report.workspace_id, agent_id=report.agent_id)
    return report


def _fail(
    report: UpdateReport, token: str, reason: str, *, job_error: str | None = None, error_code: str | None = None
) -> None:
    # Error texts come from Coder's answers; a misbehaving server could echo the token back.
    report.error = _redact(reason, token)
    report.job_error = _redact(job_error, token) if job_error else None
    report.error_code = error_code
    _logger.info("update_workspace.failed", workspace_id=report.workspace_id, error_code=error_code)


def _redact(text: str, token: str) -> str:
    return text.replace(token, REDACTED) if token else text


async def _run_recipe(client: CoderClient, request: UpdateRequest, progress: Progress, report: UpdateReport) -> None:
    readiness = ReadinessSettings(agent_online_timeout=request.agent_timeout, build_timeout=request.start_timeout)
    lifecycle = CoderLifecycle(client, readiness, stop_build_timeout=request.stop_timeout)

    progress.phase(f"Looking up workspace {request.workspace_ref}")
    workspace = await _find_workspace(client, request)
    report.workspace_id, report.workspace_name = workspace.id, workspace.name

    observer = _ReportObserver(report, progress)
    outcome = await lifecycle.update(workspace.id, request.template_version_id, force=request.force, observer=observer)
    if outcome.failure is not None:
        failure = outcome.failure
        reason = _failure_reason(failure, request)
        raise UpdateFailedError(reason, job_error=failure.job_error, error_code=failure.error_code)
    if outcome.action is Action.UP_TO_DATE:
        report.up_to_date = True
        _logger.info("update_workspace.up_to_date", workspace_id=workspace.id, version_id=report.template_version_id)
    agent_readiness = outcome.readiness
    # A template without agents: the build is all there is to wait for.
    if agent_readiness is None or agent_readiness.state in (AgentState.READY, AgentState.NO_AGENT):
        return
    if agent_readiness.state is AgentState.SELECTION_ERROR:
        raise UpdateFailedError(f"the started workspace has no single agent to wait for: {agent_readiness.error}")
    assert outcome.agent is not None  # an agent that is not ready was selected and waited for
    raise UpdateFailedError(_agent_problem(outcome.agent.name, agent_readiness, readiness))


class _ReportObserver(LifecycleObserver):
    """Fills the report in as the update proceeds (so an interrupted run still names its builds) and
    announces each phase."""

    def __init__(self, report: UpdateReport, progress: Progress) -> None:
        self._report = report
        self._progress = progress

    def version_chosen(self, workspace: Workspace, version_id: str) -> None:
        self._report.template_version_id = version_id
        self._progress.phase(f"Checking template version {version_id}")

    def awaiting_build(self, workspace: Workspace, build: WorkspaceBuild) -> None:
        self._progress.phase(f"Waiting for the active {describe_build(build)} to finish")

    def build_posted(self, workspace: Workspace, build: WorkspaceBuild) -> None:
        _logger.info("update_workspace.build_created", transition=build.transition.value, build_id=build.id)
        if build.transition is Transition.STOP:
            self._report.stop_build_id = build.id
            self._progress.phase(f"Stopping {workspace.name} ({describe_build(build)})")
            return
        self._report.start_build_id = build.id
        version = self._report.template_version_id
        self._progress.phase(f"Starting {workspace.name} on template version {version} ({describe_build(build)})")

    def agent_selected(self, workspace: Workspace, build: WorkspaceBuild, agent: WorkspaceAgent) -> None:
        self._report.agent_id = agent.id
        self._progress.phase(f"Waiting for agent {agent.name} to connect and run its startup scripts")


async def _find_workspace(client: CoderClient, request: UpdateRequest) -> Workspace:
    try:
        if request.workspace_name is not None:
            return await client.workspace_by_name(request.workspace_name)
        assert request.workspace_id is not None  # UpdateRequest guarantees exactly one
        return await client.workspace(request.workspace_id)
    except CoderNotFoundError:
        raise UpdateFailedError(f"workspace {request.workspace_ref} not found") from None
    except CoderWorkspaceDeletedError:
        raise UpdateFailedError(f"workspace {request.workspace_ref} was deleted") from None
    except CoderValidationError as exc:  # an id that is not a UUID
        raise UpdateFailedError(f"workspace {request.workspace_ref} not found: {exc}") from None


def _failure_reason(failure: Failure, request: UpdateRequest) -> str:
    """A sentence for the update's failure, naming the build and the budget it ran out of."""
    if failure.kind is FailureKind.DELETED:
        return f"workspace {request.workspace_ref} was deleted"
    if not failure.of_build:
        return failure.message
    stopping = failure.transition is Transition.STOP
    doing = "stopping the workspace" if stopping else "starting the workspace"
    build = f"(build {failure.build_id})"
    if failure.kind is FailureKind.BUILD_TIMEOUT:
        budget = request.stop_timeout if stopping else request.start_timeout
        return f"{doing} did not finish within {budget:g} s {build}"
    if failure.kind is FailureKind.BUILD_CANCELED:
        return f"{doing} was canceled {build}"
    reason = f"{doing} failed: {failure.job_error or 'Coder gave no error text'}"
    if failure.error_code:
        reason += f" [error code {failure.error_code}]"
    return f"{reason} {build}"


def _agent_problem(agent_name: str, readiness: AgentReadiness, settings: ReadinessSettings) -> str:
    """A sentence for an agent that is not ready."""
    if readiness.state is AgentState.NOT_CONNECTED:
        return f"agent {agent_name} did not connect within {settings.agent_online_timeout:g} s ({readiness.error})"
    if readiness.state is AgentState.STARTUP_SCRIPTS_TIMEOUT:
        return f"agent {agent_name}'s startup scripts did not finish within {settings.startup_scripts_timeout:g} s"
    state = readiness.lifecycle_state.value if readiness.lifecycle_state is not None else "unknown"
    return f"agent {agent_name}'s startup scripts failed (lifecycle state {state})"


# -- running it -------------------------------------------------------------------------------------------


def execute(
    request: UpdateRequest,
    *,
    coder_url: str,
    token: str,
    progress: Progress | None = None,
    clock: Clock | None = None,
    backend: str = "asyncio",
) -> UpdateReport:
    """Run `update_workspace` on a fresh event loop of ``backend`` and return its report.

    Ctrl-C (KeyboardInterrupt, or the cancellation asyncio turns it into) ends the run with
    ``report.interrupted`` set, ``error`` "interrupted" and the ids made so far; builds already posted
    are left running in Coder. ``clock`` defaults to `SystemClock`; only tests pass another.
    """
    report = UpdateReport()

    async def run() -> None:
        async with CoderClient(coder_url, token, clock=clock or SystemClock()) as client:
            await update_workspace(client, request, progress=progress, report=report)

    try:
        anyio.run(run, backend=backend)
    except BaseException as exc:
        if not _is_interruption(exc):
            raise
        report.interrupted = True
        report.ok = False
        report.error = INTERRUPTED
        _logger.info("update_workspace.interrupted", workspace_id=report.workspace_id)
    return report


def _is_interruption(exc: BaseException) -> bool:
    """Ctrl-C as it leaves `anyio.run`: KeyboardInterrupt (possibly in a group raised by a task group),
    or asyncio's CancelledError when the main task was cancelled without a SIGINT."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_interruption(inner) for inner in exc.exceptions)
    return isinstance(exc, KeyboardInterrupt | asyncio.CancelledError)


class PlainProgress:
    """One line per phase, for logs and pipes."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def phase(self, description: str) -> None:
        print(f"{description} ...", file=self._stream, flush=True)

    def end(self, *, succeeded: bool) -> None:
        pass


class RichProgress:
    """A spinner on the current phase; each finished phase stays as a ticked line. For terminals."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._status: Status | None = None
        self._current: str | None = None

    def phase(self, description: str) -> None:
        self._settle(succeeded=True)
        self._current = description
        self._status = self._console.status(escape(description))
        self._status.start()

    def end(self, *, succeeded: bool) -> None:
        """Stop the spinner, marking the last phase done or failed."""
        self._settle(succeeded=succeeded)

    def _settle(self, *, succeeded: bool) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
        if self._current is not None:
            mark = "[green]✓[/green]" if succeeded else "[red]✗[/red]"
            self._console.print(f"{mark} {escape(self._current)}", highlight=False)
            self._current = None


def interruption_notice(report: UpdateReport) -> str:
    """After Ctrl-C: what the user left running in Coder, by build id, so they can watch or cancel it."""
    workspace = report.workspace_name or report.workspace_id
    if report.start_build_id is not None and report.agent_id is not None:
        return (
            f"Interrupted: the start build {report.start_build_id} of workspace {workspace} finished; "
            f"its agent continues starting in Coder."
        )
    if report.start_build_id is not None:
        return f"Interrupted: the start build {report.start_build_id} of workspace {workspace} continues in Coder."
    if report.stop_build_id is not None:
        return (
            f"Interrupted: the stop build {report.stop_build_id} of workspace {workspace} continues in Coder; "
            f"no start build was made, so the workspace stays stopped."
        )
    return "Interrupted before any build was made: nothing changed in Coder."


@app.command("update-workspace")
def update_workspace_command(
    coder_url: Annotated[
        str,
        typer.Option("--coder-url", envvar="CODER_URL", callback=parse_coder_url, help=CODER_URL_HELP),
    ],
    token: Annotated[
        str,
        typer.Option(
            "--token",
            envvar="CODER_SESSION_TOKEN",
            show_default=False,
            help="A Coder session token (prefer the environment variable: arguments are visible to other users).",
        ),
    ],
    workspace_id: Annotated[str | None, typer.Option("--workspace-id", help="The workspace's id.")] = None,
    workspace_name: Annotated[
        str | None, typer.Option("--workspace-name", help="One of your workspaces, by name (any case).")
    ] = None,
    template_version_id: Annotated[
        str | None,
        typer.Option("--template-version-id", help="The version to move to (default: the template's active version)."),
    ] = None,
    stop_timeout: Annotated[
        float, typer.Option("--stop-timeout", callback=positive_seconds, help="Seconds the stop build may take.")
    ] = DEFAULT_STOP_TIMEOUT,
    start_timeout: Annotated[
        float, typer.Option("--start-timeout", callback=positive_seconds, help="Seconds the start build may take.")
    ] = DEFAULT_START_TIMEOUT,
    agent_timeout: Annotated[
        float,
        typer.Option(
            "--agent-timeout", callback=positive_seconds, help="Seconds the agent may take to connect after the start."
        ),
    ] = DEFAULT_AGENT_TIMEOUT,
    force: Annotated[
        bool, typer.Option("--force", help="Stop and start the workspace even if it already runs the version.")
    ] = False,
    log_level: Annotated[
        LogLevel, typer.Option("--log-level", case_sensitive=False, help="Log events at this level and above.")
    ] = LogLevel.WARNING,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object with the outcome on stdout.")
    ] = False,
) -> None:
    """Stop a workspace, start it on a template version, and wait until its agent is ready.

    Does nothing when the workspace already runs the version ("up-to-date"), unless --force.

    Exit status: 0 updated and ready, or up-to-date; 1 failed or refused, the reason printed; 2 usage error;
    130 interrupted (the builds that continue in Coder are named).
    """
    workspace_id = workspace_id or None
    workspace_name = workspace_name or None
    if (workspace_id is None) == (workspace_name is None):
        raise typer.BadParameter(
            "give exactly one of --workspace-id and --workspace-name",
            param_hint="'--workspace-id' / '--workspace-name'",
        )
    configure_logging(log_level)
    request = UpdateRequest(
        workspace_id=workspace_id,
        workspace_name=workspace_name,
        template_version_id=template_version_id or None,
        stop_timeout=stop_timeout,
        start_timeout=start_timeout,
        agent_timeout=agent_timeout,
        force=force,
    )
    console = Console(stderr=True)
    progress = RichProgress(console) if console.is_terminal else PlainProgress(sys.stderr)
    report = UpdateReport()
    try:
        report = execute(request, coder_url=coder_url, token=token, progress=progress)
    finally:
        progress.end(succeeded=report.ok)
    if report.interrupted:
        print(interruption_notice(report), file=sys.stderr, flush=True)
    elif report.error is not None:
        print(f"Error: {report.error}", file=sys.stderr, flush=True)
    if json_output:
        print(json.dumps(report.as_json()), flush=True)
    elif report.up_to_date:
        print(
            f"Workspace {report.workspace_name} is up-to-date: it already runs template version "
            f"{report.template_version_id}. Nothing was done (--force stops and starts it anyway)."
        )
    elif report.ok:
        print(f"Workspace {report.workspace_name} is running template version {report.template_version_id}.")
    raise typer.Exit(report.exit_code)


if __name__ == "__main__":
    # Only this command is registered when the module runs as a script, so typer runs it without the
    # subcommand name: ``python -m chat_mcp_primer.cli.update_workspace --workspace-name dev``.
    app()
