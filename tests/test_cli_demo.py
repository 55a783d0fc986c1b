"""The demo end to end, as a newcomer runs it: a subprocess on the embedded Coder simulator, real time."""

from __future__ import annotations

import json
import subprocess
import sys

# Guards against a hung demo only; the demo itself takes a few seconds of real time.
DEMO_GUARD_S = 120


def run_demo(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chat_mcp_primer", "demo", "--json", *arguments],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=DEMO_GUARD_S,
        check=False,
    )


def test_demo_offers_the_workspace_tools_after_the_server_is_ready() -> None:
    finished = run_demo("--cold-start", "0.5")
    assert finished.returncode == 0, finished.stderr
    summary = json.loads(finished.stdout)
    assert summary["ok"] is True
    assert summary["server_ready_s"] is not None
    assert summary["tools_offered_s"] >= summary["server_ready_s"]
    assert summary["delay_s"] == summary["tools_offered_s"] - summary["server_ready_s"]
    assert summary["primer_attempts"] >= 1
    assert 1 <= summary["first_step_with_workspace_tools"] < summary["steps"]
    assert "primer" in summary["message"]  # the model used the workspace tool and read its answer
    assert "create_workspace returned" in finished.stderr  # the timeline went to stderr, JSON to stdout


def test_demo_with_a_server_that_never_comes_up_fails_with_a_clear_message() -> None:
    finished = run_demo("--no-server", "--max-wait", "1", "--patience", "1")
    assert finished.returncode == 1
    summary = json.loads(finished.stdout)
    assert summary["ok"] is False
    assert summary["first_step_with_workspace_tools"] is None
    assert "never appeared" in finished.stderr
