"""The workspace gateway as its own process, for tests: its config files and stdio test servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import anyio
import httpx

from chat_mcp_primer.gateway import DISCOVERY_PATH

SERVER_SCRIPT = Path(__file__).parent / "gateway_servers" / "stdio_server.py"
# Generous guards for a loaded machine: a stdio server is a fresh Python importing the SDK (about a second).
GUARD_SECONDS = 60.0
# Between looks at something that happens in its own time, in another process (a port opening, a pid ending).
PROCESS_POLL_SECONDS = 0.05


def stdio(*args: str) -> dict[str, Any]:
    return {"command": sys.executable, "args": [str(SERVER_SCRIPT), *args]}


def write_config(path: Path, servers: Mapping[str, Any]) -> Path:
    """Replace ``path`` as an editor saves: a new file renamed over the old one."""
    staged = path.with_name(path.name + ".tmp")
    staged.write_text(json.dumps({"mcpServers": dict(servers)}))
    os.replace(staged, path)
    return path


def start_gateway(config: Path, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "chat_mcp_primer", "gateway", "--listen", f"127.0.0.1:{port}", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


async def command_report_when(port: int, condition: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The command's report, once ``condition`` holds (asked every few milliseconds, under the guard)."""
    async with httpx.AsyncClient() as http:
        with anyio.fail_after(GUARD_SECONDS):
            while True:
                try:
                    report: dict[str, Any] = (await http.get(f"http://127.0.0.1:{port}{DISCOVERY_PATH}")).json()
                except httpx.TransportError:  # not listening yet
                    report = {}
                if report and condition(report):
                    return report
                await anyio.sleep(PROCESS_POLL_SECONDS)
