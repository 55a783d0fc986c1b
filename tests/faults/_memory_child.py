"""Run in a child process by `test_memory_bounds`: one whole turn against a flooding server, after a warm-up
turn against the same server healthy, and print (as JSON) how far resident memory rose above where it was.

The peak is reset (``/proc/self/clear_refs``) after the warm-up, so ``VmHWM`` is the flood turn's own."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import anyio

# The fault matrix's harness next to this file, and the repository root it imports from.
sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[2])]

from _harness import FAULT_SETTINGS, calls, run_fault_turn  # noqa: E402

from chat_mcp_primer.testing import Flood, MockClock, WorkspaceMCPServer, echo_tools  # noqa: E402

MB = 1_000_000
FLOODS = {
    "300-mb-body": Flood.body(300 * MB),
    "2-million-tools": Flood.tools(2_000_000),
    "2-million-tools-paged": Flood.tools(2_000_000, page_size=10_000),
}
# One attempt and no held-step polls: the peak of one flooded listing is what is measured, not a turn's worth
# of them (they come one after another, and each lets go of what it read).
SETTINGS = replace(FAULT_SETTINGS, max_attempts=1, prepare_wait=0.0)


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(field)


def reset_peak() -> None:
    """From here on, ``VmHWM`` is the peak since this call (Linux: 5 to clear_refs resets it)."""
    Path("/proc/self/clear_refs").write_text("5")


async def main(kind: str) -> None:
    clock = MockClock()
    with WorkspaceMCPServer(echo_tools("search"), name="docs", clock=clock) as server:
        await run_fault_turn(clock, [server.endpoint()], calls(clock, "docs__search"), settings=SETTINGS)
        server.flood = FLOODS[kind]
        before = status_kib("VmRSS")
        reset_peak()
        turn = await run_fault_turn(clock, [server.endpoint()], calls(clock, "docs__search"), settings=SETTINGS)
        peak = status_kib("VmHWM")
        server.flood = None
        await server.wait_until_idle()
    print(json.dumps({"growth_kib": peak - before, "failures": sorted(turn.failures), "floods": server.floods_sent}))


if __name__ == "__main__":
    anyio.run(main, sys.argv[1])
