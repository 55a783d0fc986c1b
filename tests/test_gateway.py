"""The gateway as a user runs it: real stdio servers (small Python scripts), a real http server, a real MCP
client over loopback, the report over HTTP, and the command itself in a process of its own.

In-process tests serve the gateway with uvicorn in the test's own loop, on a `MockClock` that decides when
restarts and config polls happen; the servers' processes are real, so outcomes are awaited (on the
gateway's own news, under a generous guard) and only states are asserted."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import mcp_types
import pytest
from mcp import Client
from mcp.client.session import IncomingMessage
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from tests._gateway_process import (
    GUARD_SECONDS,
    PROCESS_POLL_SECONDS,
    command_report_when,
    start_gateway,
    stdio,
    write_config,
)
from typer.testing import CliRunner

from chat_mcp_primer.cli import EXIT_USAGE, build_app
from chat_mcp_primer.clock import tags
from chat_mcp_primer.gateway import DISCOVERY_PATH, MCP_PATH, Gateway, GatewaySettings, serve_http
from chat_mcp_primer.gateway._report import sanitise_reason
from chat_mcp_primer.testing import MockClock, WorkspaceMCPServer, echo_tools, free_port

pytestmark = pytest.mark.anyio

# Config polls only where a test changes the files: elsewhere the restart backoff is the one timer that moves.
NO_POLLS = GatewaySettings(config_poll_seconds=3600.0)
POLL_SECONDS = NO_POLLS.config_poll_seconds
SECRET = "sekrit-token-4242"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # uvicorn serves the gateway in the test's own loop


def pids_in(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def running(pid: int) -> bool:
    """Whether the process is alive (a zombie, dead but not yet reaped, is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


class ListChanges:
    """Counts the ``tools/list_changed`` notifications a client received."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = anyio.Event()

    def bump(self) -> None:
        self.count += 1
        self._changed.set()
        self._changed = anyio.Event()

    async def handler(self, message: IncomingMessage) -> None:
        if isinstance(message, mcp_types.ToolListChangedNotification):
            self.bump()

    async def wait_for(self, count: int) -> None:
        with anyio.fail_after(GUARD_SECONDS):
            while self.count < count:
                await self._changed.wait()


@dataclass
class Served:
    gateway: Gateway
    base_url: str

    @property
    def mcp_url(self) -> str:
        return self.base_url + MCP_PATH

    async def discovery(self) -> dict[str, Any]:
        async with httpx.AsyncClient() as http:
            response = await http.get(self.base_url + DISCOVERY_PATH)
        assert response.status_code == 200
        report: dict[str, Any] = response.json()
        return report

    async def report_when(self, condition: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The report over HTTP, once ``condition`` holds for it (waiting on the gateway's own news)."""
        with anyio.fail_after(GUARD_SECONDS):
            while not condition(self.gateway.report().to_json()):
                await self.gateway.table.wait_report_changed()
        report = await self.discovery()
        assert condition(report)
        return report

    async def status_when(self, server: str, status: str) -> dict[str, Any]:
        report = await self.report_when(lambda report: report["servers"].get(server, {}).get("status") == status)
        line: dict[str, Any] = report["servers"][server]
        return line


@asynccontextmanager
async def serving(
    paths: list[Path], clock: MockClock, settings: GatewaySettings = NO_POLLS, environ: Mapping[str, str] | None = None
) -> AsyncIterator[Served]:
    gateway = Gateway(paths, settings=settings, clock=clock, environ=environ)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        stop = anyio.Event()
        async with gateway, anyio.create_task_group() as group:
            group.start_soon(serve_http, gateway, listener, stop)
            try:
                yield Served(gateway, f"http://127.0.0.1:{listener.getsockname()[1]}")
            finally:
                stop.set()


async def tool_names(client: Client) -> set[str]:
    return {tool.name for tool in (await client.list_tools(cache_mode="bypass")).tools}


def text_of(result: mcp_types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, mcp_types.TextContent)
    return block.text


# -- serving the servers --------------------------------------------------------------------------------


async def test_stdio_and_http_servers_are_served_as_server__tool_and_every_server_is_reported(
    tmp_path: Path, mock_clock: MockClock
) -> None:
    pids = tmp_path / "pids"
    with WorkspaceMCPServer(echo_tools("search"), name="web") as web:
        config = write_config(
            tmp_path / ".mcp.json",
            {
                "files": stdio("--tools", "read,write", "--pid-file", str(pids)),
                "web": {"url": web.url},
                "silent": stdio(),
                "bad__name": {"command": "mcp-bad"},
                "keyless": {**stdio("--fail-start", f"token {SECRET} was rejected"), "env": {"API_KEY": "${KEY}"}},
            },
        )
        async with serving([config], mock_clock, environ={**os.environ, "KEY": SECRET}) as served:
            report = await served.report_when(lambda report: report["phase"] == "complete")
            assert report == {
                "run_id": served.gateway.run_id,
                "phase": "complete",
                "servers": {
                    "files": {"status": "ok", "tools": 2, "reason": None},
                    "web": {"status": "ok", "tools": 1, "reason": None},
                    "silent": {"status": "empty", "tools": 0, "reason": None},
                    "bad__name": {"status": "failed", "tools": 0, "reason": "the server name must not contain '__'"},
                    "keyless": {
                        "status": "failed",
                        "tools": 0,
                        "reason": "the server exited: token *** was rejected; restarting in 1 s",
                    },
                },
            }
            async with Client(served.mcp_url, cache=None) as client:
                assert await tool_names(client) == {"files__read", "files__write", "web__search"}
                assert text_of(await client.call_tool("files__read", {"text": "hi"})) == "read says hi"
                assert text_of(await client.call_tool("web__search", {"q": "x"})) == "search called with {'q': 'x'}"
                unknown = await client.call_tool("files__delete", {})
                assert unknown.is_error
                assert "no tool named 'files__delete'" in text_of(unknown)
            assert web.call_calls == 1
            (child,) = pids_in(pids)
            assert running(child)
        assert not running(child)  # the gateway closed its child on the way out


async def test_an_empty_mcp_json_is_complete_at_once_with_no_tools(tmp_path: Path, mock_clock: MockClock) -> None:
    config = tmp_path / ".mcp.json"
    config.write_text("{}")
    async with serving([config, tmp_path / "absent" / ".mcp.json"], mock_clock) as served:
        report = await served.discovery()
        assert report == {"run_id": served.gateway.run_id, "phase": "complete", "servers": {}}
        async with Client(served.mcp_url, cache=None) as client:
            assert await tool_names(client) == set()


async def test_each_gateway_run_has_a_run_id_of_its_own(tmp_path: Path, mock_clock: MockClock) -> None:
    config = write_config(tmp_path / ".mcp.json", {})
    async with serving([config], mock_clock) as first:
        first_id = (await first.discovery())["run_id"]
    async with serving([config], mock_clock) as second:
        second_id = (await second.discovery())["run_id"]
    assert first_id != second_id
    assert len(first_id) == len(second_id) == 32


async def test_a_held_read_of_the_report_answers_when_it_changes_or_304_once_its_wait_is_over(
    tmp_path: Path, mock_clock: MockClock
) -> None:
    config = write_config(tmp_path / ".mcp.json", {})
    polls = GatewaySettings(config_poll_seconds=1.0)
    async with serving([config], mock_clock, polls) as served, httpx.AsyncClient(base_url=served.base_url) as http:
        first = await http.get(DISCOVERY_PATH)
        etag = first.headers["etag"]
        conditional = {"If-None-Match": etag}
        assert (await http.get(DISCOVERY_PATH, headers=conditional)).status_code == 304  # no wait asked: at once
        with anyio.fail_after(GUARD_SECONDS):
            async with anyio.create_task_group() as group:
                answers: list[httpx.Response] = []

                async def held_read() -> None:
                    answers.append(await http.get(DISCOVERY_PATH, headers={**conditional, "Prefer": "wait=30"}))

                group.start_soon(held_read)
                await mock_clock.wait_for_sleeper(*tags.GATEWAY_REPORT_WAIT)  # the read is held
                write_config(config, {"silent": stdio()})  # a server declared: the report changes
                await mock_clock.advance(polls.config_poll_seconds)
        [changed] = answers
        assert changed.status_code == 200
        assert changed.headers["etag"] != etag
        assert "silent" in changed.json()["servers"]
        # Nothing changes any more: a held read ends with 304 when its wait is over.
        unchanged = {"If-None-Match": changed.headers["etag"], "Prefer": "wait=5"}
        with anyio.fail_after(GUARD_SECONDS):
            async with anyio.create_task_group() as group:
                answers.clear()

                async def read_again() -> None:
                    answers.append(await http.get(DISCOVERY_PATH, headers=unchanged))

                group.start_soon(read_again)
                await mock_clock.wait_for_sleeper(*tags.GATEWAY_REPORT_WAIT)
                for _ in range(5):  # a step at a time: the config poll is due every second
                    await mock_clock.advance(polls.config_poll_seconds)
        assert [answer.status_code for answer in answers] == [304]


async def test_a_read_held_when_the_gateway_stops_is_answered_at_once(tmp_path: Path, mock_clock: MockClock) -> None:
    config = write_config(tmp_path / ".mcp.json", {})
    gateway = Gateway([config], settings=NO_POLLS, clock=mock_clock)
    held: list[httpx.Response] = []
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        base_url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        stop = anyio.Event()
        with anyio.fail_after(GUARD_SECONDS):
            async with httpx.AsyncClient(base_url=base_url) as http, gateway, anyio.create_task_group() as group:
                group.start_soon(serve_http, gateway, listener, stop)
                etag = (await http.get(DISCOVERY_PATH)).headers["etag"]

                async def held_read() -> None:  # nothing will change: held until the gateway stops
                    held.append(await http.get(DISCOVERY_PATH, headers={"If-None-Match": etag, "Prefer": "wait=60"}))

                group.start_soon(held_read)
                await mock_clock.wait_for_sleeper(*tags.GATEWAY_REPORT_WAIT)
                stop.set()  # as SIGTERM does: the server stops, its requests in flight answered
    assert [response.status_code for response in held] == [304]


# -- failures and restarts ------------------------------------------------------------------------------


async def test_a_crashed_server_is_restarted_with_backoff_and_its_tools_come_back(
    tmp_path: Path, mock_clock: MockClock
) -> None:
    pids = tmp_path / "pids"
    config = write_config(
        tmp_path / ".mcp.json", {"flaky": stdio("--tools", "echo", "--crashable", "--pid-file", str(pids))}
    )
    changes = ListChanges()
    async with serving([config], mock_clock) as served:
        await served.status_when("flaky", "ok")
        async with Client(served.mcp_url, cache=None, mode="legacy", message_handler=changes.handler) as client:
            assert await tool_names(client) == {"flaky__echo", "flaky__crash"}
            for crash, delay in enumerate([1, 2], start=1):
                crashed = await client.call_tool("flaky__crash", {})
                assert crashed.is_error
                line = await served.status_when("flaky", "failed")
                assert line == {
                    "status": "failed",
                    "tools": 0,
                    "reason": f"the server exited: crashing on purpose; restarting in {delay} s",
                }
                await changes.wait_for(2 * crash - 1)  # the tools were withdrawn
                assert await tool_names(client) == set()
                down = await client.call_tool("flaky__echo", {})
                assert down.is_error

                await mock_clock.wait_for_sleeper(*tags.GATEWAY_RESTART)
                assert mock_clock.peek() == delay
                await mock_clock.advance(delay)
                assert await served.status_when("flaky", "ok") == {"status": "ok", "tools": 2, "reason": None}
                await changes.wait_for(2 * crash)  # and are back
                assert await tool_names(client) == {"flaky__echo", "flaky__crash"}
                assert text_of(await client.call_tool("flaky__echo", {"text": "again"})) == "echo says again"
    first, second, third = pids_in(pids)
    assert not any(running(pid) for pid in (first, second, third))


async def test_a_server_that_never_starts_stays_failed_while_the_phase_completes(
    tmp_path: Path, mock_clock: MockClock
) -> None:
    config = write_config(
        tmp_path / ".mcp.json",
        {
            "broken": stdio("--fail-start", "ModuleNotFoundError: No module named 'mcp_github'"),
            "nowhere": {"command": str(tmp_path / "no-such-command")},
        },
    )
    async with serving([config], mock_clock) as served:
        report = await served.report_when(lambda report: report["phase"] == "complete")
        assert report["servers"] == {
            "broken": {
                "status": "failed",
                "tools": 0,
                "reason": "the server exited: ModuleNotFoundError: No module named 'mcp_github'; restarting in 1 s",
            },
            "nowhere": {
                "status": "failed",
                "tools": 0,
                "reason": "cannot start its command: No such file or directory; restarting in 1 s",
            },
        }
        assert str(tmp_path) not in json.dumps(report)  # the gateway's own paths stay out of the report
        await mock_clock.wait_for_sleeper(*tags.GATEWAY_RESTART, count=2)
        await mock_clock.advance(1)
        report = await served.report_when(
            lambda report: all("restarting in 2 s" in line["reason"] for line in report["servers"].values())
        )
        assert report["phase"] == "complete"
        assert {line["status"] for line in report["servers"].values()} == {"failed"}


async def wait_until_gone(*pids: int) -> None:
    """Wait (in real time, under the guard) until none of ``pids`` runs: a process ends in its own time."""
    with anyio.fail_after(GUARD_SECONDS):
        while True:
            if not any(running(pid) for pid in pids):
                return
            await anyio.sleep(PROCESS_POLL_SECONDS)


async def test_an_http_server_that_goes_away_is_reconnected_once_it_is_back(
    tmp_path: Path, mock_clock: MockClock
) -> None:
    port = free_port()
    config = write_config(tmp_path / ".mcp.json", {"web": {"url": f"http://127.0.0.1:{port}/mcp"}})
    web = WorkspaceMCPServer(echo_tools("search"), name="web", port=port).start()
    try:
        async with serving([config], mock_clock) as served, Client(served.mcp_url, cache=None) as client:
            await served.status_when("web", "ok")
            web.kill()
            failed = await client.call_tool("web__search", {})
            assert failed.is_error
            assert "search on MCP server 'web' failed" in text_of(failed)
            line = await served.status_when("web", "failed")
            assert line["reason"].endswith("; restarting in 1 s")
            assert await tool_names(client) == set()

            await mock_clock.wait_for_sleeper(*tags.GATEWAY_RESTART)
            await mock_clock.advance(1)
            line = await served.report_when(lambda report: "in 2 s" in report["servers"]["web"]["reason"])
            assert line["servers"]["web"]["reason"] == "connection refused or unreachable; restarting in 2 s"

            web = WorkspaceMCPServer(echo_tools("search"), name="web", port=port).start()
            await mock_clock.wait_for_sleeper(*tags.GATEWAY_RESTART)
            await mock_clock.advance(2)
            assert await served.status_when("web", "ok") == {"status": "ok", "tools": 1, "reason": None}
            assert text_of(await client.call_tool("web__search", {})) == "search called with {}"
    finally:
        web.stop()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Authorization: Bearer abc.def rejected", "Authorization: Bearer *** rejected"),
        ("GITHUB_TOKEN=ghp_123 and api-key: k1 are wrong", "GITHUB_TOKEN=*** and api-key: *** are wrong"),
        ("cannot reach https://bot:hunter2@git.example.com/x", "cannot reach https://bot:***@git.example.com/x"),
        (
            "Traceback (most recent call last):\n  File x\nValueError: bad",
            "Traceback (most recent call last): File x ValueError: bad",
        ),
        (f"the key {SECRET} expired", "the key *** expired"),
        ("x" * 300, "x" * 197 + "..."),
    ],
)
def test_reasons_are_one_short_line_without_credentials(text: str, reason: str) -> None:
    assert sanitise_reason(text, GatewaySettings().max_reason_chars, hidden=[SECRET, "on"]) == reason


# -- change notifications -------------------------------------------------------------------------------


async def test_list_changed_reaches_clients_of_both_protocol_eras(tmp_path: Path, mock_clock: MockClock) -> None:
    config = write_config(tmp_path / ".mcp.json", {"grower": stdio("--tools", "base", "--growable")})
    legacy, modern = ListChanges(), ListChanges()
    async with serving([config], mock_clock) as served:
        await served.status_when("grower", "ok")
        async with (
            Client(served.mcp_url, cache=None, mode="legacy", message_handler=legacy.handler) as old,
            Client(served.mcp_url, cache=None) as new,
        ):
            assert old.protocol_version not in MODERN_PROTOCOL_VERSIONS
            assert new.protocol_version in MODERN_PROTOCOL_VERSIONS
            before = {"grower__base", "grower__grow"}
            assert await tool_names(old) == await tool_names(new) == before
            async with new.listen(tools_list_changed=True) as subscription, anyio.create_task_group() as group:

                async def count() -> None:
                    async for _ in subscription:
                        modern.bump()

                group.start_soon(count)
                await new.call_tool("grower__grow", {})  # the server adds a tool and says so
                await legacy.wait_for(1)
                await modern.wait_for(1)
                group.cancel_scope.cancel()
            assert await tool_names(old) == await tool_names(new) == {*before, "grower__extra"}
        assert (await served.discovery())["servers"]["grower"] == {"status": "ok", "tools": 3, "reason": None}


# -- config changes -------------------------------------------------------------------------------------


async def test_config_file_changes_are_picked_up_without_a_restart(tmp_path: Path, mock_clock: MockClock) -> None:
    settings = GatewaySettings(config_poll_seconds=1.0)
    config = tmp_path / ".mcp.json"  # not there yet
    alpha_pids, beta_pids = tmp_path / "alpha.pids", tmp_path / "beta.pids"
    changes = ListChanges()

    async def next_poll() -> None:
        await mock_clock.wait_for_sleeper(*tags.GATEWAY_CONFIG_POLL)
        await mock_clock.advance(settings.config_poll_seconds)

    async with serving([config], mock_clock, settings) as served:
        assert (await served.discovery())["servers"] == {}
        async with Client(served.mcp_url, cache=None, mode="legacy", message_handler=changes.handler) as client:
            assert await tool_names(client) == set()

            write_config(config, {"alpha": stdio("--tools", "one", "--pid-file", str(alpha_pids))})
            await next_poll()
            assert (await served.status_when("alpha", "ok"))["tools"] == 1
            await changes.wait_for(1)
            assert await tool_names(client) == {"alpha__one"}

            # alpha's entry changes (it is restarted, with its new tools), beta is added
            write_config(
                config,
                {
                    "alpha": stdio("--tools", "one,two", "--pid-file", str(alpha_pids)),
                    "beta": stdio("--tools", "b", "--pid-file", str(beta_pids)),
                },
            )
            await next_poll()
            report = await served.report_when(
                lambda report: (
                    report["servers"]["alpha"]["tools"] == 2 and report["servers"].get("beta", {}).get("status") == "ok"
                )
            )
            assert report["phase"] == "complete"
            await changes.wait_for(2)
            assert await tool_names(client) == {"alpha__one", "alpha__two", "beta__b"}
            old_alpha, new_alpha = pids_in(alpha_pids)
            await wait_until_gone(old_alpha)
            assert running(new_alpha)

            # alpha is removed; beta, unchanged, keeps running as it was
            write_config(config, {"beta": stdio("--tools", "b", "--pid-file", str(beta_pids))})
            await next_poll()
            await served.report_when(lambda report: "alpha" not in report["servers"])
            assert await tool_names(client) == {"beta__b"}
            await wait_until_gone(new_alpha)
            (beta,) = pids_in(beta_pids)
            assert running(beta)

            # a file that turns unusable leaves the servers as they were
            config.write_text("{ half-written")
            await next_poll()
            await next_poll()
            assert (await served.discovery())["servers"] == {"beta": {"status": "ok", "tools": 1, "reason": None}}

            config.unlink()
            await next_poll()
            report = await served.report_when(lambda report: report["servers"] == {})
            assert report["phase"] == "complete"
            assert await tool_names(client) == set()
            await wait_until_gone(beta)
            assert changes.count >= 4


# -- the command ----------------------------------------------------------------------------------------


async def exit_status(process: subprocess.Popen[str]) -> int:
    return await anyio.to_thread.run_sync(lambda: process.wait(timeout=GUARD_SECONDS))


def two_servers(tmp_path: Path) -> tuple[Path, Path]:
    pids = tmp_path / "pids"
    config = write_config(
        tmp_path / ".mcp.json",
        {"one": stdio("--tools", "a", "--pid-file", str(pids)), "two": stdio("--tools", "b", "--pid-file", str(pids))},
    )
    return config, pids


@pytest.mark.parametrize(("stop", "status"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
async def test_the_command_closes_every_server_when_it_is_stopped(
    tmp_path: Path, stop: signal.Signals, status: int
) -> None:
    config, pids = two_servers(tmp_path)
    port = free_port()
    process = start_gateway(config, port)
    try:
        report = await command_report_when(port, lambda report: report["phase"] == "complete")
        assert {name: line["status"] for name, line in report["servers"].items()} == {"one": "ok", "two": "ok"}
        async with Client(f"http://127.0.0.1:{port}{MCP_PATH}", cache=None) as client:
            assert await tool_names(client) == {"one__a", "two__b"}
        children = pids_in(pids)
        assert len(children) == 2
        assert all(running(pid) for pid in children)
        process.send_signal(stop)
        assert await exit_status(process) == status
    finally:
        process.kill()
        _, stderr = process.communicate()
    assert "Traceback" not in stderr
    assert stderr.splitlines()[-1] == "gateway: stopped; every server closed"
    assert not any(running(pid) for pid in children)  # closed before the gateway exited


async def test_stdio_servers_of_a_gateway_killed_outright_see_end_of_file_and_exit(tmp_path: Path) -> None:
    config, pids = two_servers(tmp_path)
    port = free_port()
    process = start_gateway(config, port)
    try:
        await command_report_when(port, lambda report: report["phase"] == "complete")
        children = pids_in(pids)
        process.kill()  # SIGKILL: no code of the gateway runs
        assert await exit_status(process) == -signal.SIGKILL
    finally:
        process.kill()
        process.communicate()
    await wait_until_gone(*children)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "nowhere"], "Error: Invalid value for '--listen': --listen expects HOST:PORT"),
        (["--listen", "127.0.0.1:0"], "Error: Invalid value for '--listen': --listen port must be between 1 and 65535"),
        (["--listen", "0.0.0.0:7347"], "Error: Invalid value for '--listen': refusing to serve on 0.0.0.0"),
        (["--config", "{unusable}"], "gateway: {unusable} must hold a JSON object"),
        (["--config", "{folder}"], "gateway: cannot read {folder}: Is a directory"),
    ],
)
def test_bad_command_lines_and_unusable_config_files_are_one_line_usage_errors(
    tmp_path: Path, args: list[str], message: str
) -> None:
    unusable = tmp_path / ".mcp.json"
    unusable.write_text("[1, 2]")
    folder = tmp_path / "folder"
    folder.mkdir()
    paths = {"unusable": str(unusable), "folder": str(folder)}
    args = [arg.format(**paths) for arg in args]
    result = CliRunner().invoke(build_app(), ["gateway", "--listen", f"127.0.0.1:{free_port()}", *args])
    assert result.exit_code == EXIT_USAGE, result.output
    assert "Traceback" not in result.output
    assert [line for line in result.stderr.splitlines() if message.format(**paths) in line] != []
    assert len([line for line in result.stderr.splitlines() if line.startswith(("Error:", "gateway:"))]) == 1
