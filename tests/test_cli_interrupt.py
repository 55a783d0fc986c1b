"""Ctrl-C in the middle of a turn, as a user presses it: the CLI stops at once, with its documented code."""

from __future__ import annotations

import selectors
import signal
import subprocess
import sys
import time

# Guards against a hung demo only; what is asserted is the exit code and the output, never a duration.
GUARD_S = 60
# The demo's MCP server takes this long to come up: long enough that the interrupt lands while the step
# is held for the primer, whatever the machine's speed.
COLD_START_S = 40
EXIT_INTERRUPTED = 130


def read_until(process: subprocess.Popen[str], marker: str) -> str:
    """The demo's timeline up to and including the first line containing ``marker``."""
    assert process.stdout is not None
    seen: list[str] = []
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + GUARD_S
        while time.monotonic() < deadline and selector.select(timeout=deadline - time.monotonic()):
            line = process.stdout.readline()
            if not line:
                break
            seen.append(line)
            if marker in line:
                return "".join(seen)
    raise AssertionError(f"the demo never printed {marker!r}:\n{''.join(seen)}")


def test_ctrl_c_while_the_step_is_held_for_the_primer_exits_130_without_a_traceback() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "chat_mcp_primer", "demo", "--cold-start", str(COLD_START_S)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        # The primer's third attempt comes after the tool returned, so the next step is held by then.
        read_until(process, "attempt 3")
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=GUARD_S)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == EXIT_INTERRUPTED, stderr
    assert "Traceback" not in stderr
