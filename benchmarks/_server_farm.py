"""Workspace MCP servers in a process of their own, as real workspaces are machines of their own.

With a hundred servers in the benchmark's own process, their threads would compete with the measured
event loop for the interpreter lock, and their memory would count as the client's. `ServerFarm` starts
them in a child process instead::

    python -m benchmarks._server_farm COUNT LISTS TOOL [TOOL...]

prints one JSON line ``{"urls": [...]}`` once every server listens, then answers each ``counts`` line on
its standard input with ``{"list_calls": [...], "open_connections": [...]}``; the end of its input stops
the servers. LISTS is ``tools``, or ``nothing`` for servers that never list a tool.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import TracebackType

from benchmarks._common import start_servers, stop_servers
from chat_mcp_primer import SystemClock
from chat_mcp_primer.testing import WorkspaceMCPServer, echo_tools

COUNTS_COMMAND = "counts"
# Starting a hundred uvicorn servers takes about half a second; this bounds a farm that never comes up.
START_TIMEOUT_S = 60.0


class ServerFarm:
    """``count`` loopback MCP servers listing ``tools`` (or nothing ever, when ``ready`` is False), served
    by a child process while the block runs."""

    def __init__(self, count: int, tools: list[str], *, ready: bool = True) -> None:
        self.count = count
        self.tools = tools
        self.ready = ready
        self.urls: list[str] = []
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> ServerFarm:
        root = Path(__file__).resolve().parent.parent
        path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._server_farm", str(self.count), _lists(self.ready), *self.tools],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=root,
            env={**os.environ, "PYTHONPATH": path},
        )
        self.urls = json.loads(self._read_line())["urls"]
        return self

    def list_calls(self) -> list[int]:
        """How many ``tools/list`` requests each server has answered so far."""
        return self._counts()["list_calls"]

    def open_connections(self) -> int:
        """Connections open to the servers now, all together."""
        return sum(self._counts()["open_connections"])

    def _counts(self) -> dict[str, list[int]]:
        process = self._running()
        assert process.stdin is not None
        process.stdin.write(COUNTS_COMMAND + "\n")
        process.stdin.flush()
        counts: dict[str, list[int]] = json.loads(self._read_line())
        return counts

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _running(self) -> subprocess.Popen[str]:
        if self._process is None:
            raise RuntimeError("the server farm is not running")
        return self._process

    def _read_line(self) -> str:
        process = self._running()
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the server farm exited early (status {process.poll()})")
        return line


def _lists(ready: bool) -> str:
    return "tools" if ready else "nothing"


def serve(count: int, ready: bool, tools: list[str]) -> None:
    never = math.inf if not ready else None
    servers = [
        WorkspaceMCPServer(echo_tools(*tools), name=f"server-{i}", clock=SystemClock(), ready_at=never)
        for i in range(count)
    ]
    start_servers(servers)
    try:
        print(json.dumps({"urls": [server.url for server in servers]}), flush=True)
        for line in sys.stdin:
            if line.strip() == COUNTS_COMMAND:
                counts = {
                    "list_calls": [server.list_calls for server in servers],
                    "open_connections": [server.open_connections for server in servers],
                }
                print(json.dumps(counts), flush=True)
    finally:
        stop_servers(servers)


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2] == _lists(True), sys.argv[3:])
