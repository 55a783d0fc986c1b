"""The demo's workspace MCP server, run as a process of its own, as a workspace agent would start it.

``python -m chat_mcp_primer.cli._demo_server --port 8931 --cold-start 3`` waits out its cold start
(connecting to its backends, in a real workspace), then listens on 127.0.0.1, prints ``ready`` on
stdout, and serves Streamable HTTP at ``/mcp``.
"""

from __future__ import annotations

import argparse
import socket
import sys

import anyio
import uvicorn
from mcp.server import MCPServer

READY_LINE = "ready"
# Stopping does not wait for clients' event streams to end: they would keep the process alive forever.
GRACEFUL_SHUTDOWN_S = 1
_DOCS = {
    "primer": "The primer retries MCP tool discovery after a workspace is ready, so tools arrive in the same turn.",
    "prepare_tools": "prepare_tools runs before every model step and merges the workspace tools it discovered.",
}


def build_server() -> MCPServer:
    server = MCPServer("docs", log_level="WARNING")

    @server.tool(description="Search the project documentation for a query.")
    def search_docs(query: str) -> str:
        hits = [text for key, text in _DOCS.items() if key in query.lower()]
        return "\n".join(hits) or f"No documentation mentions {query!r}."

    @server.tool(description="Run the test suite under a path and report the outcome.")
    def run_tests(path: str = ".") -> str:
        return f"tests under {path}: 42 passed"

    return server


class CannotListenError(Exception):
    """The port cannot be had; the text is the one line the process leaves on stderr."""


async def serve(port: int, cold_start: float) -> None:
    await anyio.sleep(cold_start)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("127.0.0.1", port))
        listener.listen()
    except OSError as exc:
        listener.close()
        reason = (exc.strerror or type(exc).__name__).lower()
        raise CannotListenError(f"cannot listen on 127.0.0.1:{port}: {reason}") from None
    # Connections queue in the backlog from here on, so the server is reachable from this moment.
    print(READY_LINE, flush=True)
    app = build_server().streamable_http_app(streamable_http_path="/mcp")
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
    await uvicorn.Server(config).serve(sockets=[listener])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cold-start", type=float, default=0.0)
    args = parser.parse_args(argv)
    try:
        anyio.run(serve, args.port, args.cold_start)
    except KeyboardInterrupt:
        sys.exit(0)
    except CannotListenError as exc:
        sys.exit(str(exc))  # the message on stderr, exit status 1


if __name__ == "__main__":
    main()
