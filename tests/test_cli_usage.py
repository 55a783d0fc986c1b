"""Bad input on the command line, in every command: a usage error (exit 2) with one ``Error:`` line saying
what is wrong, never a traceback; and ``--version``. Run through typer's CliRunner on the whole
``chat-mcp-primer`` app: every case here is refused while the command line is parsed, before anything is
dialled."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pytest
from click.testing import Result
from typer.testing import CliRunner

from chat_mcp_primer.cli import EXIT_OK, EXIT_USAGE, build_app

# Enough for every command to get past its other required options and reach the one under test.
COMMAND_ARGS = {
    "demo": ["demo"],
    "serve-mcp": ["serve-mcp", "--token", "t0ken"],
    "update-workspace": ["update-workspace", "--token", "t0ken", "--workspace-name", "dev"],
}
MALFORMED_URLS = {
    "http://[::1": "is not a valid URL (invalid IPv6 URL)",
    "http://127.0.0.1:99999": "port must be a number from 1 to 65535",
    "http://": "has no host",
    "ftp://x": "must be an http:// or https:// URL (scheme: 'ftp')",
    "coder.example.com": "must be an http:// or https:// URL (scheme: none)",
    "https://alice:secret@coder.example.com": "must not carry credentials",
}
# Usage errors never depend on the shell the tests run in.
CLEAN_ENV: dict[str, str | None] = {
    "CODER_URL": None,
    "CODER_SESSION_TOKEN": None,
    "OPENAI_API_KEY": None,
    "ANTHROPIC_API_KEY": None,
}


def invoke(*args: str) -> Result:
    return CliRunner().invoke(build_app(), list(args), env=CLEAN_ENV)


def assert_usage_error(result: Result, message: str) -> None:
    assert result.exit_code == EXIT_USAGE, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert message in errors[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", COMMAND_ARGS)
@pytest.mark.parametrize(("url", "message"), MALFORMED_URLS.items(), ids=list(MALFORMED_URLS))
def test_a_malformed_coder_url_is_a_usage_error_in_every_command(command: str, url: str, message: str) -> None:
    result = invoke(*COMMAND_ARGS[command], "--coder-url", url)

    assert_usage_error(result, "Invalid value for '--coder-url'")
    assert_usage_error(result, message)
    assert "secret" not in result.output  # a URL may carry credentials: it is never echoed


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "-inf"])
def test_demo_refuses_a_cold_start_that_is_negative_or_not_finite(value: str) -> None:
    result = invoke("demo", "--json", "--cold-start", value)

    assert_usage_error(result, "Invalid value for '--cold-start': must be a finite number of seconds, zero or more")
    assert result.stdout == ""  # no JSON summary, let alone one with NaN in it


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demo", "--max-wait", "0"], "Invalid value for '--max-wait': must be a positive, finite number"),
        (["demo", "--patience", "nan"], "Invalid value for '--patience'"),
        (["demo", "--server-port", "70000"], "Invalid value for '--server-port'"),
        (["demo", "--strategy", "fastest"], "choose one of primed, reference"),
        (["demo", "--coder-url", "http://127.0.0.1:1"], "--coder-url needs a session token"),
        ([*COMMAND_ARGS["update-workspace"], "--coder-url", "http://h", "--stop-timeout", "inf"], "--stop-timeout"),
        (["demo", "--model", "gpt-4.1-mini"],
         "Invalid value for '--model': a model is given as provider:model, e.g. openai:gpt-4.1-mini"),
        (["demo", "--model", "gemini:pro"], "unknown model provider 'gemini' in 'gemini:pro'"),
        (["demo", "--model", "openai:gpt-4.1-mini"], "openai:gpt-4.1-mini needs an API key: set OPENAI_API_KEY"),
        (["demo", "--model", "anthropic:claude-sonnet-4-5"], "needs an API key: set ANTHROPIC_API_KEY"),
    ],
)  # fmt: skip
def test_other_unusable_values_are_usage_errors(args: list[str], message: str) -> None:
    assert_usage_error(invoke(*args), message)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "no Coder URL: pass --coder-url or set CODER_URL"),
        (["--coder-url", "http://127.0.0.1:1", "--token", ""], "no Coder session token: pass --token or set"),
        (["--coder-url", "http://127.0.0.1:1", "--poll-interval", "0"], "Invalid value for '--poll-interval'"),
        (["--coder-url", "http://127.0.0.1:1", "--build-timeout", "nan"], "Invalid value for '--build-timeout'"),
        (["--coder-url", "http://127.0.0.1:1", "--http", "8000"], "--http expects HOST:PORT"),
        (["--coder-url", "http://127.0.0.1:1", "--http", "127.0.0.1:0"], "--http port must be between 1 and 65535"),
        (
            ["--coder-url", "http://127.0.0.1:1", "--http", "10.1.2.3:8000"],
            "not a loopback address, without a bearer token",
        ),
    ],
)
def test_serve_mcp_usage_errors_exit_2(args: list[str], message: str) -> None:
    result = invoke(*COMMAND_ARGS["serve-mcp"], *args)

    assert_usage_error(result, message)
    assert "serving" not in result.output
    assert "t0ken" not in result.output


def test_version_prints_the_installed_version() -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "chat_mcp_primer", "--version"], capture_output=True, text=True, check=False
    )

    assert finished.returncode == EXIT_OK
    assert finished.stdout == f"chat-mcp-primer {importlib.metadata.version('chat-mcp-primer')}\n"
