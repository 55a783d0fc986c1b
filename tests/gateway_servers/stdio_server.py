"""A small stdio MCP server for the gateway's tests, run as ``python stdio_server.py [OPTIONS]``.

Options (all optional):

- ``--tools a,b``: the tools it lists (each answers with its name and arguments); none: it lists no tools;
- ``--pid-file PATH``: append its pid to PATH when it starts, so a test can check it is gone later;
- ``--fail-start TEXT``: write TEXT to stderr and exit at once with status 1 (a server that never starts);
- ``--start-delay SECONDS``: wait that long (real time) before answering anything (a slow server);
- ``crash`` (always listed with ``--crashable``): write "crashing on purpose" to stderr and exit with 3;
- ``grow`` (always listed with ``--growable``): add a tool ``extra`` and say tools/list_changed.

It exits when its stdin closes, as every SDK stdio server does.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from typing import Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tools", default="")
    parser.add_argument("--pid-file")
    parser.add_argument("--fail-start")
    parser.add_argument("--crashable", action="store_true")
    parser.add_argument("--growable", action="store_true")
    parser.add_argument("--start-delay", type=float, default=0.0)
    options = parser.parse_args()
    if options.pid_file:
        with open(options.pid_file, "a", encoding="utf-8") as pids:
            pids.write(f"{os.getpid()}\n")
    if options.fail_start:
        print(options.fail_start, file=sys.stderr, flush=True)
        sys.exit(1)
    if options.start_delay:
        time.sleep(options.start_delay)

    server = MCPServer("test-stdio", log_level="WARNING")

    def answering(name: str) -> Any:
        def answer(text: str = "") -> str:
            return f"{name} says {text}"

        return answer

    for name in filter(None, options.tools.split(",")):
        server.add_tool(answering(name), name=name, description=f"The {name} tool.")

    if options.crashable:

        def crash() -> str:
            print("crashing on purpose", file=sys.stderr, flush=True)
            os._exit(3)

        server.add_tool(crash, name="crash", description="Exit at once.")

    if options.growable:

        async def grow(ctx: Context) -> str:
            server.add_tool(answering("extra"), name="extra", description="Added by grow.")
            await ctx.notify_tools_changed()  # 2026 era: the subscription stream
            with contextlib.suppress(Exception):  # the other era: the stream above carried it
                await ctx.session.send_tool_list_changed()  # handshake era
            return "grown"

        server.add_tool(grow, name="grow", description="Add a tool.")

    server.run("stdio")


if __name__ == "__main__":
    main()
