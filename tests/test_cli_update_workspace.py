"""``chat-mcp-primer update-workspace`` against FakeCoder over real loopback HTTP.

The main cases run the command as a subprocess (``python -m chat_mcp_primer.cli.update_workspace``, which
runs the command without its subcommand name) against a fake on `SystemClock` with tiny build timings; every
such run also checks that the session token appears nowhere in stdout or stderr. The budget exits, which
would take minutes of real time, run in-process on a `MockClock` shared by the fake and the client, with
autojump. Nothing asserts how long anything took.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass

import pytest

from chat_mcp_primer.cli._app import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK
from chat_mcp_primer.cli.update_workspace import (
    DEFAULT_AGENT_TIMEOUT,
    DEFAULT_START_TIMEOUT,
    DEFAULT_STOP_TIMEOUT,
    UpdateReport,
    UpdateRequest,
    execute,
    update_workspace,
)
from chat_mcp_primer.clock import SystemClock
from chat_mcp_primer.clock import tags as clock_tags
from chat_mcp_primer.testing import (
    FakeAgent,
    FakeCoder,
    FakeTemplate,
    FakeVersion,
    MockClock,
    ServedFakeCoder,
    WorkspaceState,
    free_port,
    serve_fake_coder,
)
from chat_mcp_primer.workspace.coder import CoderClient

pytestmark = pytest.mark.anyio

# A guard against a hung command only; no test depends on it.
SUBPROCESS_GUARD_SECONDS = 60
# Typer draws usage errors in a rich panel as wide as the terminal (80 columns when unknown), wrapping the
# message; wide enough for any message here to stay on one line.
TERMINAL_COLUMNS = "200"
# Far beyond any budget the tests give, so a build or agent with it never finishes in time.
FOREVER = 10_000.0
# Tiny but non-zero, so each phase (queued, running, connecting, starting) really happens, yet a whole
# update settles in a fraction of a second of the fake's time.
QUICK_QUEUE = 0.05
QUICK_START = 0.1
QUICK_STOP = 0.05
QUICK_CONNECT = 0.05
QUICK_STARTUP = 0.05
QUICK_AGENT = FakeAgent("main", connect_seconds=QUICK_CONNECT, startup_seconds=QUICK_STARTUP)
# A budget unlike every default, so a message naming it proves the request's own budget was applied.
GIVEN_BUDGET = 45.0
# Click's status for a command line it could not parse, distinct from the command's own failure status.
USAGE_ERROR_EXIT = 2


def quick_version(
    name: str,
    agents: Sequence[FakeAgent] = (QUICK_AGENT,),
    *,
    build_seconds: float = QUICK_START,
    stop_seconds: float = QUICK_STOP,
) -> FakeVersion:
    return FakeVersion(
        name, agents=agents, queue_seconds=QUICK_QUEUE, build_seconds=build_seconds, stop_seconds=stop_seconds
    )


DOCKER = FakeTemplate(
    "docker",
    [
        quick_version("v1"),
        quick_version("v2"),
        quick_version("slow-stop", stop_seconds=FOREVER),
        quick_version("slow-start", build_seconds=FOREVER),
        quick_version("silent", [FakeAgent("main", never_connects=True)]),
        quick_version("crashing", [FakeAgent("main", connect_seconds=QUICK_CONNECT, startup_outcome="start_error")]),
        quick_version("no-agent", []),
        FakeVersion("broken", import_error="terraform init failed"),
    ],
    active_version="v1",
)
OTHER = FakeTemplate("other", [quick_version("o1")])


def transitions(fake: FakeCoder, workspace: str) -> list[str]:
    return [build["transition"] for build in fake.builds(workspace)]


# -- subprocess runs ----------------------------------------------------------------------------------------


@pytest.fixture
def fake() -> FakeCoder:
    return FakeCoder(SystemClock(), templates=[DOCKER, OTHER])


@dataclass(frozen=True)
class Run:
    """A finished command; unlike `subprocess.CompletedProcess` it keeps no argv, which may hold the token."""

    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str, env: Mapping[str, str] | None = None, secret: str) -> Run:
    """Run the command as a user would, then check ``secret`` leaked into neither stream (without ever
    putting it in an assertion message)."""
    clean_env = {k: v for k, v in os.environ.items() if k not in ("CODER_URL", "CODER_SESSION_TOKEN")}
    result = subprocess.run(
        [sys.executable, "-m", "chat_mcp_primer.cli.update_workspace", *args],
        env={**clean_env, "COLUMNS": TERMINAL_COLUMNS, **(env or {})},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_GUARD_SECONDS,
        check=False,
    )
    leaked = secret in result.stdout or secret in result.stderr
    assert not leaked, "the session token appeared in the command's output"
    return Run(result.returncode, result.stdout, result.stderr)


def coder_env(coder: ServedFakeCoder, token: str | None = None) -> dict[str, str]:
    return {"CODER_URL": coder.url, "CODER_SESSION_TOKEN": token if token is not None else coder.token}


def test_update_to_the_active_version_stops_starts_and_exits_0(fake: FakeCoder, coder: ServedFakeCoder) -> None:
    workspace_id = fake.create_workspace("dev", "docker")
    fake.set_active_version("docker", "v2")

    result = run_cli("--workspace-id", workspace_id, env=coder_env(coder), secret=coder.token)

    assert result.returncode == EXIT_OK, result.stderr
    assert transitions(fake, "dev") == ["start", "stop", "start"]
    latest = fake.workspace("dev")["latest_build"]
    assert latest["template_version_id"] == fake.version_id("docker", "v2")
    assert latest["status"] == "running"
    assert "Stopping dev" in result.stderr  # plain progress lines: stderr is not a terminal
    assert "Workspace dev is running template version" in result.stdout


def test_explicit_version_by_name_in_another_case_succeeds_with_one_json_object(
    fake: FakeCoder, coder: ServedFakeCoder
) -> None:
    workspace_id = fake.create_workspace("dev", "docker")
    v2 = fake.version_id("docker", "v2")

    result = run_cli(
        "--workspace-name", "DeV", "--template-version-id", v2, "--json", "--log-level", "debug",
        "--coder-url", coder.url, "--token", coder.token,
        secret=coder.token,
    )  # fmt: skip

    assert result.returncode == EXIT_OK, result.stderr
    report = json.loads(result.stdout)  # exactly one JSON document, nothing else on stdout
    builds = fake.builds("dev")
    agent = builds[-1]["resources"][0]["agents"][0]
    assert report == {
        "ok": True,
        "interrupted": False,
        "up_to_date": False,
        "workspace_id": workspace_id,
        "workspace_name": "dev",
        "template_version_id": v2,
        "stop_build_id": builds[1]["id"],
        "start_build_id": builds[2]["id"],
        "agent_id": agent["id"],
        "error": None,
        "job_error": None,
        "error_code": None,
    }
    assert agent["lifecycle_state"] == "ready"
    assert fake.workspace("dev")["template_active_version_id"] != v2  # the explicit version, not the active one


def test_a_workspace_already_on_the_version_is_left_alone_and_said_to_be_up_to_date(
    fake: FakeCoder, coder: ServedFakeCoder
) -> None:
    fake.create_workspace("dev", "docker")  # running the active version, v1

    result = run_cli("--workspace-name", "dev", env=coder_env(coder), secret=coder.token)
    as_json = run_cli("--workspace-name", "dev", "--json", env=coder_env(coder), secret=coder.token)

    assert result.returncode == EXIT_OK, result.stderr
    v1 = fake.version_id("docker", "v1")
    assert result.stdout == (
        f"Workspace dev is up-to-date: it already runs template version {v1}. "
        "Nothing was done (--force stops and starts it anyway).\n"
    )
    assert as_json.returncode == EXIT_OK, as_json.stderr
    report = json.loads(as_json.stdout)
    assert (report["ok"], report["up_to_date"], report["stop_build_id"], report["start_build_id"]) == (
        True,
        True,
        None,
        None,
    )
    assert transitions(fake, "dev") == ["start"]  # nothing was built


def test_force_stops_and_starts_a_workspace_already_on_the_version(fake: FakeCoder, coder: ServedFakeCoder) -> None:
    fake.create_workspace("dev", "docker")

    result = run_cli("--workspace-name", "dev", "--force", env=coder_env(coder), secret=coder.token)

    assert result.returncode == EXIT_OK, result.stderr
    assert "Workspace dev is running template version" in result.stdout
    assert transitions(fake, "dev") == ["start", "stop", "start"]


def test_ctrl_c_names_the_build_that_continues_in_coder_and_exits_130(fake: FakeCoder, coder: ServedFakeCoder) -> None:
    fake.create_workspace("dev", "docker", version="slow-stop")
    clean_env = {k: v for k, v in os.environ.items() if k not in ("CODER_URL", "CODER_SESSION_TOKEN")}
    with subprocess.Popen(
        [sys.executable, "-m", "chat_mcp_primer.cli.update_workspace", "--workspace-name", "dev"],
        env={**clean_env, **coder_env(coder)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stderr is not None
        # The progress line for the stop comes once the stop build was made and its id is known.
        for line in process.stderr:
            if line.startswith("Stopping dev"):
                break
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=SUBPROCESS_GUARD_SECONDS)

    assert process.returncode == EXIT_INTERRUPTED
    stop_build = fake.builds("dev")[-1]
    assert stop_build["transition"] == "stop"
    assert stderr.splitlines()[-1] == (
        f"Interrupted: the stop build {stop_build['id']} of workspace dev continues in Coder; "
        "no start build was made, so the workspace stays stopped."
    )
    assert "Traceback" not in stderr
    assert stdout == ""
    assert coder.token not in stdout + stderr


def test_failed_stop_aborts_with_the_job_error_and_makes_no_start_build(
    fake: FakeCoder, coder: ServedFakeCoder
) -> None:
    fake.create_workspace("dev", "docker")
    fake.set_active_version("docker", "v2")
    fake.fail_next_build("docker rm: device busy", "STOP_STUCK", transition="stop")

    result = run_cli("--workspace-name", "dev", env=coder_env(coder), secret=coder.token)

    assert result.returncode == EXIT_FAILURE
    assert "stopping the workspace failed: docker rm: device busy [error code STOP_STUCK]" in result.stderr
    assert transitions(fake, "dev") == ["start", "stop"]


def test_failed_start_reports_job_error_and_code_in_json(fake: FakeCoder, coder: ServedFakeCoder) -> None:
    fake.create_workspace("dev", "docker")
    fake.set_active_version("docker", "v2")
    fake.fail_next_build("quota exceeded", "INSUFFICIENT_QUOTA", transition="start")

    result = run_cli("--workspace-name", "dev", "--json", env=coder_env(coder), secret=coder.token)

    assert result.returncode == EXIT_FAILURE
    assert "starting the workspace failed: quota exceeded [error code INSUFFICIENT_QUOTA]" in result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["job_error"] == "quota exceeded"
    assert report["error_code"] == "INSUFFICIENT_QUOTA"
    assert report["start_build_id"] == fake.builds("dev")[-1]["id"]
    assert report["agent_id"] is None
    assert transitions(fake, "dev") == ["start", "stop", "start"]


@pytest.mark.parametrize(
    ("version", "reason"),
    [
        pytest.param(lambda fake: str(uuid.uuid4()), "does not exist", id="unknown"),
        pytest.param(lambda fake: fake.version_id("other", "o1"), "belongs to another template", id="other-template"),
    ],
)
def test_unusable_version_is_refused_before_anything_is_built(
    fake: FakeCoder, coder: ServedFakeCoder, version: Callable[[FakeCoder], str], reason: str
) -> None:
    fake.create_workspace("dev", "docker")

    result = run_cli(
        "--workspace-name", "dev", "--template-version-id", version(fake), env=coder_env(coder), secret=coder.token
    )

    assert result.returncode == EXIT_FAILURE
    assert reason in result.stderr
    assert transitions(fake, "dev") == ["start"]


def test_rejected_token_fails_clearly_without_printing_the_token(fake: FakeCoder, coder: ServedFakeCoder) -> None:
    fake.create_workspace("dev", "docker")
    token = fake.issue_token()
    fake.revoke_token(token)

    result = run_cli("--workspace-name", "dev", env=coder_env(coder, token), secret=token)

    assert result.returncode == EXIT_FAILURE
    assert "the session token was rejected" in result.stderr
    assert transitions(fake, "dev") == ["start"]


@pytest.mark.parametrize(
    "workspace_args",
    [
        pytest.param(["--workspace-id", str(uuid.uuid4()), "--workspace-name", "dev"], id="both"),
        pytest.param([], id="neither"),
    ],
)
def test_workspace_must_be_named_exactly_once(coder: ServedFakeCoder, workspace_args: list[str]) -> None:
    result = run_cli(*workspace_args, env=coder_env(coder), secret=coder.token)

    assert result.returncode == USAGE_ERROR_EXIT
    assert "exactly one of --workspace-id and --workspace-name" in result.stderr


# -- in-process, on a MockClock -----------------------------------------------------------------------------


@dataclass
class World:
    clock: MockClock
    fake: FakeCoder
    client: CoderClient


@pytest.fixture
async def world(clock: MockClock) -> AsyncIterator[World]:
    fake = FakeCoder(clock, templates=[DOCKER, OTHER])
    with serve_fake_coder(fake) as served:
        async with CoderClient(served.url, served.token, clock=clock) as client:
            yield World(clock, fake, client)


async def update(
    world: World,
    workspace: str,
    version: str | None = None,
    *,
    stop_timeout: float = DEFAULT_STOP_TIMEOUT,
    start_timeout: float = DEFAULT_START_TIMEOUT,
    agent_timeout: float = DEFAULT_AGENT_TIMEOUT,
) -> UpdateReport:
    """Update ``workspace`` (by name) to ``version`` (by name) with time jumping through every wait."""
    version_id = world.fake.version_id("docker", version) if version is not None else None
    request = UpdateRequest(
        workspace_name=workspace,
        template_version_id=version_id,
        stop_timeout=stop_timeout,
        start_timeout=start_timeout,
        agent_timeout=agent_timeout,
    )
    async with world.clock.autojump():
        return await update_workspace(world.client, request)


async def test_stop_exceeding_its_budget_aborts_before_starting(world: World) -> None:
    world.fake.create_workspace("dev", "docker", version="slow-stop")

    report = await update(world, "dev", "v2", stop_timeout=GIVEN_BUDGET)

    assert report.exit_code == EXIT_FAILURE
    assert report.error is not None
    assert report.error.startswith(f"stopping the workspace did not finish within {GIVEN_BUDGET:g} s")
    assert report.stop_build_id is not None
    assert report.start_build_id is None
    assert transitions(world.fake, "dev") == ["start", "stop"]


async def test_start_exceeding_its_budget_fails(world: World) -> None:
    world.fake.create_workspace("dev", "docker")

    report = await update(world, "dev", "slow-start", start_timeout=GIVEN_BUDGET)

    assert report.exit_code == EXIT_FAILURE
    assert report.error is not None
    assert report.error.startswith(f"starting the workspace did not finish within {GIVEN_BUDGET:g} s")
    assert report.start_build_id == world.fake.builds("dev")[-1]["id"]


async def test_agent_that_never_connects_fails_after_the_agent_budget(world: World) -> None:
    world.fake.create_workspace("dev", "docker")

    report = await update(world, "dev", "silent", agent_timeout=GIVEN_BUDGET)

    assert report.exit_code == EXIT_FAILURE
    assert report.error is not None
    assert report.error.startswith(f"agent main did not connect within {GIVEN_BUDGET:g} s")
    assert report.agent_id is not None


async def test_failing_startup_scripts_fail_the_update(world: World) -> None:
    world.fake.create_workspace("dev", "docker")

    report = await update(world, "dev", "crashing")

    assert report.exit_code == EXIT_FAILURE
    assert report.error == "agent main's startup scripts failed (lifecycle state start_error)"


async def test_active_start_build_is_waited_for_then_the_workspace_is_stopped_and_updated(world: World) -> None:
    world.fake.create_workspace("dev", "docker", state="starting")

    report = await update(world, "dev", "v2")

    assert report.exit_code == EXIT_OK, report.error
    assert transitions(world.fake, "dev") == ["start", "stop", "start"]


@pytest.mark.parametrize("state", ["stopped", "failed"])
async def test_workspace_that_is_not_running_is_started_without_a_stop(world: World, state: WorkspaceState) -> None:
    world.fake.create_workspace("dev", "docker", state=state)

    report = await update(world, "dev", "v2")

    assert report.exit_code == EXIT_OK, report.error
    assert report.stop_build_id is None
    assert world.fake.builds("dev")[-1]["template_version_id"] == world.fake.version_id("docker", "v2")


async def test_version_without_agents_succeeds_once_built(world: World) -> None:
    world.fake.create_workspace("dev", "docker")

    report = await update(world, "dev", "no-agent")

    assert report.exit_code == EXIT_OK, report.error
    assert report.agent_id is None


async def test_version_whose_import_failed_is_refused(world: World) -> None:
    world.fake.create_workspace("dev", "docker")

    report = await update(world, "dev", "broken")

    assert report.error is not None
    assert report.error.endswith("failed to import")
    assert transitions(world.fake, "dev") == ["start"]


async def test_version_still_importing_is_refused(world: World) -> None:
    world.fake.create_workspace("dev", "docker")
    world.fake.add_version("docker", FakeVersion("v3", import_seconds=FOREVER))

    report = await update(world, "dev", "v3")

    assert report.error is not None
    assert "is still importing" in report.error
    assert transitions(world.fake, "dev") == ["start"]


async def test_an_unreachable_deployment_is_reported_with_its_host_and_the_cause(clock: MockClock) -> None:
    port = free_port()
    async with CoderClient(f"http://127.0.0.1:{port}", "t0ken", clock=clock) as client, clock.autojump():
        report = await update_workspace(client, UpdateRequest(workspace_name="dev"))

    assert report.exit_code == EXIT_FAILURE
    assert report.error == f"cannot reach 127.0.0.1:{port}: connection refused (GET /workspaces)"


async def test_unknown_workspace_is_reported_as_not_found(world: World) -> None:
    report = await update(world, "nowhere")

    assert report.exit_code == EXIT_FAILURE
    assert report.error == "workspace nowhere not found"


@dataclass
class CtrlCWhileBuilding(SystemClock):
    """The real clock, except that the first build poll finds Ctrl-C pressed: a real SIGINT, delivered
    the way the backend's run loop delivers it (asyncio: cancellation, then KeyboardInterrupt)."""

    pressed: bool = False

    async def sleep(self, seconds: float, *tags: str) -> None:
        if not self.pressed and all(tag in tags for tag in clock_tags.CODER_BUILD_POLL):
            self.pressed = True
            signal.raise_signal(signal.SIGINT)
        await super().sleep(seconds, *tags)


def test_ctrl_c_during_a_build_exits_130_and_reports_the_builds_made(
    fake: FakeCoder, coder: ServedFakeCoder, anyio_backend: str
) -> None:
    fake.create_workspace("dev", "docker", version="slow-stop")
    clock = CtrlCWhileBuilding()

    report = execute(
        UpdateRequest(workspace_name="dev"), coder_url=coder.url, token=coder.token, clock=clock, backend=anyio_backend
    )

    assert clock.pressed
    assert report.exit_code == EXIT_INTERRUPTED
    assert report.error == "interrupted"
    assert report.stop_build_id == fake.builds("dev")[-1]["id"]
    assert report.start_build_id is None
