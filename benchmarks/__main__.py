"""Run the benchmark suite and print one table: ours (strategy "primed") beside the reference.

.venv/bin/python -m benchmarks            # the full run (make bench): a few minutes on 2 cores
.venv/bin/python -m benchmarks --quick    # a smoke run: fewer trials, smaller fan-out
.venv/bin/python -m benchmarks --only prepare_tools
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import time
from collections.abc import Callable

from rich.console import Console
from rich.table import Table

from benchmarks import fanout, gateway, prepare_tools, replicas, shutdown, time_to_tools
from benchmarks._common import Section

BENCHMARKS: dict[str, Callable[[bool], Section]] = {
    "time_to_tools": time_to_tools.run,
    "prepare_tools": prepare_tools.run,
    "fanout": fanout.run,
    "shutdown": shutdown.run,
    "gateway": gateway.run,
    "replicas": replicas.run,
}


def render(sections: list[Section], *, quick: bool, command: str, elapsed: float) -> Table:
    title = "chat-mcp-primer benchmarks" + (" (quick smoke run)" if quick else "")
    table = Table(title=title, show_lines=False)
    table.add_column("benchmark", style="bold")
    table.add_column("metric")
    table.add_column("ours (primed)", justify="right")
    table.add_column("reference", justify="right")
    table.add_column("target", justify="right")
    table.add_column("met", justify="center")
    for section in sections:
        for row in section.rows:
            met = "—" if row.met is None else ("yes" if row.met else "NO")
            table.add_row(row.benchmark, row.metric, row.ours, row.reference, row.target, met)
        table.add_section()
    notes = [note for section in sections for note in section.notes]
    machine = f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs, {sys.platform}"
    table.caption = "\n".join(
        [
            *notes,
            f"Measured on {machine}; all traffic on 127.0.0.1; whole run {elapsed:.0f} s.",
            f"Reproduce: {command}",
        ]
    )
    table.caption_justify = "left"
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer trials and a smaller fan-out: a smoke run")
    parser.add_argument("--only", choices=sorted(BENCHMARKS), action="append", help="run only these (repeatable)")
    args = parser.parse_args(argv)
    # The SDK and uvicorn log connection teardown at warning level; the table is what matters here.
    logging.basicConfig(level=logging.ERROR)
    console = Console(width=150)
    chosen = args.only or list(BENCHMARKS)
    started = time.perf_counter()
    sections: list[Section] = []
    for name in chosen:
        console.print(f"[dim]running {name}…[/dim]")
        begun = time.perf_counter()
        sections.append(BENCHMARKS[name](args.quick))
        console.print(f"[dim]{name} took {time.perf_counter() - begun:.1f} s[/dim]")
    flags = (" --quick" if args.quick else "") + "".join(f" --only {name}" for name in args.only or ())
    command = f".venv/bin/python -m benchmarks{flags}" + ("" if flags else "  (or: make bench)")
    console.print(render(sections, quick=args.quick, command=command, elapsed=time.perf_counter() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
