"""Every Python example in the README runs, exactly as printed."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import anyio

from chat_mcp_primer import Chat, ModelResponse
from chat_mcp_primer.clock import SystemClock
from chat_mcp_primer.testing import FakeAgent, FakeCoder, FakeTemplate, FakeVersion, ScriptedModel, serve_fake_coder

README = Path(__file__).resolve().parent.parent / "README.md"
EXAMPLE = re.compile(r"```python\n# README example: (?P<name>[a-z-]+)\n(?P<code>.*?)```", re.DOTALL)
# The simulated deployment the embedding example talks to, in real time: fast, so the test is too.
QUICK = FakeVersion("v1", agents=[FakeAgent(connect_seconds=0.01, startup_seconds=0.01)], queue_seconds=0.01)
# A pytest run in a fresh process: its start-up, imports and a loopback server per backend, on a loaded machine.
PYTEST_RUN_TIMEOUT_S = 300


def example_code() -> dict[str, str]:
    text = README.read_text()
    found = {match["name"]: match["code"] for match in EXAMPLE.finditer(text)}
    assert len(found) == text.count("```python"), "every python block must start with '# README example: <name>'"
    return found


def examples() -> dict[str, dict[str, Any]]:
    namespaces: dict[str, dict[str, Any]] = {}
    for name, code in example_code().items():
        namespace: dict[str, Any] = {"__name__": f"readme_{name}"}
        exec(compile(code, f"README.md:{name}", "exec"), namespace)
        namespaces[name] = namespace
    return namespaces


def test_readme_has_the_examples_this_file_runs() -> None:
    assert set(examples()) == {"embedding", "testing"}


def test_embedding_example_runs_a_turn_against_a_coder_deployment() -> None:
    serve: Callable[..., Coroutine[Any, Any, Chat]] = examples()["embedding"]["serve"]
    fake = FakeCoder(SystemClock(), templates=[FakeTemplate("docker", [QUICK])])
    model = ScriptedModel([ModelResponse(text="Hello!")])
    with serve_fake_coder(fake) as coder:
        chat = anyio.run(serve, model, coder.url, coder.token, Chat(id="c1", owner="alice"), "Hi")
    assert [message.text for message in chat.messages] == ["Hi", "Hello!"]
    assert "create_workspace" in model.offered[0]


def test_testing_example_passes_pasted_into_a_new_test_file(tmp_path: Path) -> None:
    """As a user would run it: a file of its own, in a directory with no conftest, under the package's plugin."""
    namespace = examples()["testing"]
    tests = [
        value for key, value in namespace.items() if key.startswith("test_") and inspect.iscoroutinefunction(value)
    ]
    assert len(tests) == 1
    (tmp_path / "test_pasted.py").write_text(example_code()["testing"])
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "test_pasted.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=PYTEST_RUN_TIMEOUT_S,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    passed = re.findall(r"::(\S+) PASSED", run.stdout)
    assert passed == [f"{tests[0].__name__}[asyncio]", f"{tests[0].__name__}[trio]"]  # on both anyio backends
