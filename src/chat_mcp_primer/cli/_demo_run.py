"""The demo's story, end to end: a scripted model provisions a workspace and uses its MCP tools in one turn.

Embedded by default: the Coder simulator (`FakeCoder`) served on loopback with the real clock, whose
template's agent starts a real MCP server as a separate process with a cold start, so the tools appear
after the agent is ready, as in real deployments. With ``coder_url`` the same conversation runs against a
real Coder deployment.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from typing import Any

import anyio
import anyio.abc

from chat_mcp_primer.clock import Clock, SystemClock
from chat_mcp_primer.events import Event
from chat_mcp_primer.model import Chat, ModelRequest, ModelResponse, ToolCall, ToolResult, ToolSpec
from chat_mcp_primer.runtime import ChatRuntime
from chat_mcp_primer.testing import (
    FakeAgent,
    FakeCoder,
    FakeMcpServer,
    FakeTemplate,
    FakeVersion,
    free_port,
    serve_fake_coder,
)
from chat_mcp_primer.tools import CoderWorkspaceTools
from chat_mcp_primer.workspace.coder import CoderBackend, CoderClient
from chat_mcp_primer.workspace_mcp import PrimerSettings

DEMO_TEMPLATE = "demo"
DEMO_WORKSPACE = "demo-dev"
# The demo server's slug: its tools are offered as docs__search_docs and docs__run_tests.
DEMO_SLUG = "docs-mcp"
WORKSPACE_TOOL_PREFIX = "docs__"
# The simulated deployment: a build of about 2 s and an agent ready 1.5 s later, short enough for a demo,
# long enough to watch.
SIM_QUEUE_S = 0.5
SIM_BUILD_S = 1.5
SIM_AGENT_CONNECT_S = 0.5
SIM_STARTUP_SCRIPTS_S = 1.0
# How often the simulated agent looks at its own state to start the MCP server; a real agent reacts at once.
AGENT_WATCH_INTERVAL_S = 0.05
# A model takes a moment per step (an LLM call); the demo's model thinks this long before each answer.
MODEL_THINK_S = 0.5


@dataclass(frozen=True, slots=True)
class DemoSummary:
    ok: bool
    strategy: str
    message: str
    cold_start_s: float | None
    server_ready_s: float | None
    tools_offered_s: float | None
    delay_s: float | None
    primer_attempts: int
    first_step_with_workspace_tools: int | None
    steps: int
    workspace_name: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


Timeline = Callable[[float, str, str], None]
"""Receives (seconds since the demo started, source, what happened)."""


class DemoModel:
    """The scripted conversation: create a workspace, keep working, use a workspace tool once offered."""

    def __init__(self, clock: Clock, template_id: str, patience_s: float) -> None:
        self._clock = clock
        self._template_id = template_id
        self._patience_s = patience_s
        self._waiting_since: float | None = None
        self.first_offered_step: int | None = None
        self.first_offered_at: float | None = None

    async def respond(self, request: ModelRequest) -> ModelResponse:
        workspace_tools = [name for name in request.tool_names if name.startswith(WORKSPACE_TOOL_PREFIX)]
        if workspace_tools and self.first_offered_step is None:
            self.first_offered_step = request.step
            self.first_offered_at = self._clock.now()
        await self._clock.sleep(MODEL_THINK_S, "demo", "model")
        if request.step == 0:
            arguments = {"template_id": self._template_id, "name": DEMO_WORKSPACE}
            return ModelResponse(
                text="Let me create a workspace for this.",
                tool_calls=(ToolCall("call-create", "create_workspace", json.dumps(arguments)),),
            )
        last = request.messages[-1]
        if workspace_tools:
            if last.tool_name and last.tool_name.startswith(WORKSPACE_TOOL_PREFIX) and last.result:
                return ModelResponse(text=f"The docs say: {last.result.text}")
            search = f"{WORKSPACE_TOOL_PREFIX}search_docs"
            query = json.dumps({"query": "how does the primer work"})
            return ModelResponse(tool_calls=(ToolCall(f"call-{request.step}", search, query),))
        if self._waiting_since is None:
            self._waiting_since = self._clock.now()
        if self._clock.now() - self._waiting_since > self._patience_s:
            return ModelResponse(text="The workspace's tools never appeared; I will use the shell instead.")
        return ModelResponse(tool_calls=(ToolCall(f"call-{request.step}", "take_notes", "{}"),))


class TakeNotes:
    """A built-in tool the model uses to keep working while the workspace's tools are not there yet."""

    spec = ToolSpec(name="take_notes", description="Write down what you know so far.")

    async def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        return ToolResult("noted")


def _simulated_deployment(clock: Clock, server_port: int) -> FakeCoder:
    server = FakeMcpServer(slug=DEMO_SLUG, cold_start_seconds=0.0, upstream=f"http://127.0.0.1:{server_port}")
    agent = FakeAgent(
        "main", connect_seconds=SIM_AGENT_CONNECT_S, startup_seconds=SIM_STARTUP_SCRIPTS_S, mcp_servers=[server]
    )
    version = FakeVersion("v1", agents=[agent], queue_seconds=SIM_QUEUE_S, build_seconds=SIM_BUILD_S)
    return FakeCoder(clock, templates=[FakeTemplate(DEMO_TEMPLATE, [version], display_name="Demo")])


class _SimulatedAgent:
    """Plays the workspace agent: once its lifecycle is ready it starts the MCP server process."""

    def __init__(self, fake: FakeCoder, clock: Clock, port: int, cold_start_s: float | None, say: Timeline) -> None:
        self._fake = fake
        self._clock = clock
        self._port = port
        self._cold_start_s = cold_start_s
        self._say = say
        self.server_ready_at: float | None = None

    async def run(self, origin: float) -> None:
        seen: set[str] = set()
        while True:
            try:
                workspace = self._fake.workspace(DEMO_WORKSPACE)
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
        async with await anyio.open_process(command, stdin=None, stderr=None) as process:
            try:
                assert process.stdout is not None
                async for chunk in process.stdout:
                    if b"ready" in chunk:
                        self.server_ready_at = self._clock.now()
                        self._say(self.server_ready_at - origin, "agent", "MCP server ready")
                        break
                await anyio.sleep_forever()
            finally:
                with anyio.CancelScope(shield=True):
                    process.terminate()
                    await process.wait()


class _Narrator:
    """Turns the runtime's events into timeline lines, and counts the primer's attempts."""

    def __init__(self, origin: float, say: Timeline) -> None:
        self._origin = origin
        self._say = say
        self.primer_attempts = 0

    def __call__(self, event: Event) -> None:
        fields = event.fields
        at = event.at - self._origin
        if event.name == "tool.called":
            self._say(at, "tool", f"{fields['tool']} returned" + (" an error" if fields.get("is_error") else ""))
        elif event.name == "primer.started":
            self._say(at, "primer", "started")
        elif event.name == "primer.attempt":
            self.primer_attempts += 1
            self._say(at, "primer", f"attempt {fields['attempt']}: {fields['outcome']}")
        elif event.name in ("primer.succeeded", "primer.gave_up", "primer.confirmed_empty"):
            self._say(at, "primer", event.name.split(".", 1)[1].replace("_", " "))
        elif event.name == "tools.added":
            self._say(at, "chat", "workspace tools offered: " + ", ".join(fields["names"]))
        elif event.name == "step.started":
            self._say(at, "model", f"step {fields['step']} ({fields['tools']} tools offered)")


async def run_demo(
    *,
    cold_start_s: float | None,
    patience_s: float,
    primer: PrimerSettings,
    say: Timeline,
    coder_url: str | None = None,
    token: str | None = None,
    template: str | None = None,
) -> DemoSummary:
    """Run the demo and return its summary. ``cold_start_s=None`` simulates a server that never comes up."""
    clock = SystemClock()
    origin = clock.now()
    async with AsyncExitStack() as stack:
        simulated_agent: _SimulatedAgent | None = None
        if coder_url is None:
            port = free_port()
            fake = _simulated_deployment(clock, port)
            served = stack.enter_context(serve_fake_coder(fake))
            coder_url, token = served.url, served.token
            simulated_agent = _SimulatedAgent(fake, clock, port, cold_start_s, say)
            say(0.0, "demo", f"Coder simulator on {coder_url}")
        if token is None:
            raise ValueError("a session token is needed for a real Coder deployment")
        client = await stack.enter_async_context(CoderClient(coder_url, token, clock=clock))
        templates = await client.templates()
        wanted = template or DEMO_TEMPLATE
        chosen = next((t for t in templates if t.name == wanted), None)
        if chosen is None:
            raise ValueError(f"no template named {wanted!r} on {coder_url}")
        backend = CoderBackend(client)
        model = DemoModel(clock, chosen.id, patience_s)
        narrator = _Narrator(origin, say)
        runtime = ChatRuntime(
            model,
            backend=backend,
            tools=[TakeNotes()],
            workspace_tools=CoderWorkspaceTools(backend),
            clock=clock,
            primer=primer,
            on_event=narrator,
        )

        async with anyio.create_task_group() as group:
            if simulated_agent is not None:
                group.start_soon(simulated_agent.run, origin)
            async with runtime:
                result = await runtime.run_turn(Chat(id="demo", owner="demo"), "Find out how the primer works.")
            group.cancel_scope.cancel()

    ready_at = simulated_agent.server_ready_at if simulated_agent is not None else None
    server_ready = None if ready_at is None else ready_at - origin
    offered = None if model.first_offered_at is None else model.first_offered_at - origin
    delay = None if offered is None or server_ready is None else offered - server_ready
    ok = model.first_offered_step is not None
    return DemoSummary(
        ok=ok,
        strategy=primer.strategy,
        message=result.text if ok else "the workspace's MCP tools were never offered to the model",
        cold_start_s=cold_start_s,
        server_ready_s=server_ready,
        tools_offered_s=offered,
        delay_s=delay,
        primer_attempts=narrator.primer_attempts,
        first_step_with_workspace_tools=model.first_offered_step,
        steps=result.steps,
        workspace_name=DEMO_WORKSPACE,
    )
