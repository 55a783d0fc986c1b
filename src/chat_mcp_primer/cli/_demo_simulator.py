"""The demo's embedded deployment: the Coder simulator, and an agent that runs a real MCP server process.

`simulated_deployment` is a `FakeCoder` on the real clock with one template whose agent's MCP server is
forwarded to a port on loopback; `SimulatedAgent` plays that agent: once the workspace's agent is ready it
starts ``python -m chat_mcp_primer.cli._demo_server`` there, after a cold start, and watches the process.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from typing import IO

import anyio

from chat_mcp_primer.clock import Clock
from chat_mcp_primer.testing import FakeAgent, FakeCoder, FakeMcpServer, FakeTemplate, FakeVersion

DEMO_TEMPLATE = "demo"
# The demo server's slug: its tools are offered as docs__search_docs and docs__run_tests.
DEMO_SLUG = "docs-mcp"
# The simulated deployment: a build of about 2 s and an agent ready 1.5 s later, short enough for a demo,
# long enough to watch.
SIM_QUEUE_S = 0.5
SIM_BUILD_S = 1.5
SIM_AGENT_CONNECT_S = 0.5
SIM_STARTUP_SCRIPTS_S = 1.0
# How often the simulated agent looks at its own state to start the MCP server; a real agent reacts at once.
AGENT_WATCH_INTERVAL_S = 0.05

Timeline = Callable[[float, str, str], None]
"""Receives (seconds since the demo started, source, what happened)."""


class DemoError(Exception):
    """The demo cannot go on; the text says why and what is left behind (never a secret)."""


def simulated_deployment(clock: Clock, server_port: int) -> FakeCoder:
    server = FakeMcpServer(slug=DEMO_SLUG, cold_start_seconds=0.0, upstream=f"http://127.0.0.1:{server_port}")
    agent = FakeAgent(
        "main", connect_seconds=SIM_AGENT_CONNECT_S, startup_seconds=SIM_STARTUP_SCRIPTS_S, mcp_servers=[server]
    )
    version = FakeVersion("v1", agents=[agent], queue_seconds=SIM_QUEUE_S, build_seconds=SIM_BUILD_S)
    return FakeCoder(clock, templates=[FakeTemplate(DEMO_TEMPLATE, [version], display_name="Demo")])


class SimulatedAgent:
    """Plays the workspace agent: once its lifecycle is ready it starts the MCP server process, and watches
    it: the process exiting, before or after it is ready, raises `DemoError` with its last words."""

    def __init__(
        self, fake: FakeCoder, clock: Clock, port: int, cold_start_s: float | None, workspace_name: str, say: Timeline
    ) -> None:
        self._fake = fake
        self._clock = clock
        self._port = port
        self._cold_start_s = cold_start_s
        self._workspace_name = workspace_name
        self._say = say
        self.server_ready_at: float | None = None

    async def run(self, origin: float) -> None:
        seen: set[str] = set()
        while True:
            try:
                workspace = self._fake.workspace(self._workspace_name)
            except ValueError:
                workspace = None
            if workspace is not None:
                build = workspace["latest_build"]
                self._note(seen, origin, "coder", f"build {build['status']}")
                agents = [a for resource in build["resources"] for a in resource["agents"]]
                for agent in agents:
                    self._note(seen, origin, "coder", f"agent {agent['status']}, {agent['lifecycle_state']}")
                if any(agent["lifecycle_state"] == "ready" for agent in agents):
                    await self._start_server(origin)
                    return
            await self._clock.sleep(AGENT_WATCH_INTERVAL_S, "demo", "agent-watch")

    def _note(self, seen: set[str], origin: float, source: str, what: str) -> None:
        if what not in seen:
            seen.add(what)
            self._say(self._clock.now() - origin, source, what)

    async def _start_server(self, origin: float) -> None:
        if self._cold_start_s is None:
            self._say(self._clock.now() - origin, "agent", "MCP server failed to start (simulated)")
            await anyio.sleep_forever()
        command = [
            sys.executable,
            "-m",
            "chat_mcp_primer.cli._demo_server",
            "--port",
            str(self._port),
            "--cold-start",
            str(self._cold_start_s),
        ]
        self._say(
            self._clock.now() - origin, "agent", f"starting MCP server process (cold start {self._cold_start_s:g} s)"
        )
        # Its stderr goes to a file, not a pipe: nobody has to drain it, and its last line explains an exit.
        with tempfile.TemporaryFile() as errors:
            async with await anyio.open_process(command, stdin=None, stderr=errors) as process:
                try:
                    assert process.stdout is not None
                    async for chunk in process.stdout:
                        if b"ready" in chunk:
                            self.server_ready_at = self._clock.now()
                            self._say(self.server_ready_at - origin, "agent", "MCP server ready")
                            break
                    status = await process.wait()
                finally:
                    with anyio.CancelScope(shield=True):
                        if process.returncode is None:
                            process.terminate()
                        await process.wait()
            when = "after it was ready" if self.server_ready_at is not None else "before it was ready"
            self._say(self._clock.now() - origin, "agent", f"MCP server process exited with status {status}")
            raise DemoError(
                f"the workspace's MCP server process (port {self._port}) exited with status {status} {when}"
                + _last_words(errors)
            )


def _last_words(stream: IO[bytes]) -> str:
    """``: <the last line the process wrote>``, or nothing when it wrote nothing."""
    stream.seek(0)
    lines = [line.strip() for line in stream.read().decode(errors="replace").splitlines() if line.strip()]
    return f": {lines[-1]}" if lines else ""
