"""The demo's story, end to end: a scripted model provisions a workspace and uses its MCP tools in one turn.

Embedded by default: the Coder simulator (`FakeCoder`) served on loopback with the real clock, whose
template's agent starts a real MCP server as a separate process with a cold start, so the tools appear
after the agent is ready, as in real deployments. That process dying (its port taken, a crash) ends the
demo with the reason at once. With ``coder_url`` the same conversation runs against a real Coder
deployment: checked first (is it Coder, does it take the token), with a workspace of a unique name that is
deleted at the end unless ``keep``; any workspace MCP tools count. With a ``model`` (`ModelSpec`) a real
model holds the same conversation instead of the scripted one, told what the script does.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from typing import Any

import anyio
import anyio.abc

from chat_mcp_primer.cli._demo_simulator import DEMO_TEMPLATE, DemoError, SimulatedAgent, Timeline, simulated_deployment
from chat_mcp_primer.clock import Clock, SystemClock
from chat_mcp_primer.events import Event
from chat_mcp_primer.model import (
    Chat,
    LimitedModel,
    Model,
    ModelError,
    ModelLimits,
    ModelRequest,
    ModelResponse,
    ToolCall,
    ToolResult,
    ToolSpec,
)
from chat_mcp_primer.models import ModelSpec
from chat_mcp_primer.runtime import ChatRuntime, TurnResult
from chat_mcp_primer.testing import (
    free_port,
    serve_fake_coder,
)
from chat_mcp_primer.tools import CoderWorkspaces
from chat_mcp_primer.workspace.coder import (
    CoderBackend,
    CoderClient,
    CoderError,
    CoderLifecycle,
    CoderNotFoundError,
    LifecycleObserver,
    ReadinessSettings,
    Workspace,
    WorkspaceBuild,
    check_deployment,
)
from chat_mcp_primer.workspace_mcp import PrimerSettings

DEMO_WORKSPACE_PREFIX = "demo-"
# Random hex digits after the prefix: 6 give 16 million names, so two demos on one deployment never meet,
# and "demo-" plus 6 stays far below Coder's 32-character limit on names.
WORKSPACE_SUFFIX_BYTES = 3
# The simulator's search tool (server "docs", from its slug docs-mcp): the model calls it when offered.
DEMO_SEARCH_TOOL = "docs__search_docs"
# A model takes a moment per step (an LLM call); the demo's model thinks this long before each answer.
MODEL_THINK_S = 0.5
# Deleting the demo's workspace on a real deployment: a person is watching, so look twice a second, and
# give a slow deployment's teardown (terraform destroy) the same 10 minutes a build gets.
DELETE_READINESS = ReadinessSettings(build_poll_interval=0.5, build_timeout=600.0)
# What the user asks, whichever model answers.
DEMO_PROMPT = "Find out how the primer works."
# What a real model is told: the scripted model's part, so the two hold the same conversation. The name
# must be the demo's own: the simulator's agent and the deletion at the end find the workspace by it. On a
# real deployment the workspace's tools may change things, so only a tool that reads is to be called.
REAL_MODEL_INSTRUCTIONS = (
    "You are the chat-mcp-primer demo. First call create_workspace with template_id {template_id} and name "
    "{workspace_name}, exactly. While the workspace's own tools (named server__tool) are not offered yet, "
    "call take_notes to keep working. As soon as they are offered, call one that only reads (a search, a "
    "listing) to answer the user's question, or, if none only reads, name them; then answer in one or two "
    "sentences."
)
SCRIPTED_MODEL_NAME = "scripted"


def unique_workspace_name() -> str:
    """A fresh name for the demo's workspace (``demo-1a2b3c``), so a demo never reuses someone's workspace."""
    return DEMO_WORKSPACE_PREFIX + secrets.token_hex(WORKSPACE_SUFFIX_BYTES)


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
    # Who answered: "scripted", or the spec of the real model (openai:gpt-4.1-mini).
    model: str = SCRIPTED_MODEL_NAME

    def to_json(self) -> str:
        """One JSON object; a number that is not finite is ``null``, so the text is always strict JSON."""
        fields = {key: _finite_or_none(value) for key, value in asdict(self).items()}
        return json.dumps(fields, sort_keys=True, allow_nan=False)


def _finite_or_none(value: object) -> object:
    return None if isinstance(value, float) and not math.isfinite(value) else value


class OfferWatch:
    """When a workspace tool was first offered to the model: a workspace tool is any tool that was not
    offered at the first step (before there was a workspace)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._builtin: frozenset[str] = frozenset()
        self.first_offered_step: int | None = None
        self.first_offered_at: float | None = None

    def workspace_tools(self, request: ModelRequest) -> list[str]:
        """The workspace tools this step offers, noting the first step that offered any."""
        if request.step == 0:
            self._builtin = frozenset(request.tool_names)
        offered = [name for name in request.tool_names if name not in self._builtin]
        if offered and self.first_offered_step is None:
            self.first_offered_step = request.step
            self.first_offered_at = self._clock.now()
        return offered


class DemoModel:
    """The scripted conversation: create a workspace, keep working, use a workspace tool once offered.

    The simulator's ``docs__search_docs`` is called; on a real deployment the model names the workspace's
    tools instead of calling tools it knows nothing about.
    """

    def __init__(
        self, clock: Clock, template_id: str, workspace_name: str, patience_s: float, watch: OfferWatch
    ) -> None:
        self._clock = clock
        self._template_id = template_id
        self._workspace_name = workspace_name
        self._patience_s = patience_s
        self._watch = watch
        self._waiting_since: float | None = None

    async def respond(self, request: ModelRequest) -> ModelResponse:
        workspace_tools = self._watch.workspace_tools(request)
        await self._clock.sleep(MODEL_THINK_S, "demo", "model")
        if request.step == 0:
            arguments = {"template_id": self._template_id, "name": self._workspace_name}
            return ModelResponse(
                text="Let me create a workspace for this.",
                tool_calls=(ToolCall("call-create", "create_workspace", json.dumps(arguments)),),
            )
        last = request.messages[-1]
        if workspace_tools:
            if last.tool_name in workspace_tools and last.result:
                return ModelResponse(text=f"The docs say: {last.result.text}")
            if DEMO_SEARCH_TOOL not in workspace_tools:
                listed = ", ".join(sorted(workspace_tools))
                return ModelResponse(text=f"The workspace offers these tools: {listed}.")
            query = json.dumps({"query": "how does the primer work"})
            return ModelResponse(tool_calls=(ToolCall(f"call-{request.step}", DEMO_SEARCH_TOOL, query),))
        if self._waiting_since is None:
            self._waiting_since = self._clock.now()
        if self._clock.now() - self._waiting_since > self._patience_s:
            return ModelResponse(text="The workspace's tools never appeared; I will use the shell instead.")
        return ModelResponse(tool_calls=(ToolCall(f"call-{request.step}", "take_notes", "{}"),))


class WatchedModel:
    """A real model under an `OfferWatch`; its provider's limits stay in force."""

    def __init__(self, model: Model, watch: OfferWatch) -> None:
        self._model = model
        self._watch = watch

    @property
    def limits(self) -> ModelLimits:
        return self._model.limits if isinstance(self._model, LimitedModel) else ModelLimits()

    async def respond(self, request: ModelRequest) -> ModelResponse:
        self._watch.workspace_tools(request)
        return await self._model.respond(request)


class TakeNotes:
    """A built-in tool the model uses to keep working while the workspace's tools are not there yet."""

    spec = ToolSpec(name="take_notes", description="Write down what you know so far.")

    async def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        return ToolResult("noted")


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
    workspace_name: str | None = None,
    keep: bool = False,
    server_port: int | None = None,
    model: ModelSpec | None = None,
) -> DemoSummary:
    """Run the demo and return its summary. ``cold_start_s=None`` simulates a server that never comes up.
    ``model``: a real model holds the conversation (opened for the demo, told the script's part; it has
    no ``patience_s``, the turn's step cap bounds it), else the scripted one.

    Without ``coder_url`` everything runs on the embedded simulator (``server_port``: where its MCP server
    process listens; default a free port). With ``coder_url`` and ``token`` it runs on that deployment,
    after `check_deployment`; its workspace (``workspace_name``, default `unique_workspace_name`) is
    deleted at the end, also when the demo fails, unless ``keep``. Raises `DemoError`, `CoderError` or,
    from a real model, `ModelError`.
    """
    clock = SystemClock()
    origin = clock.now()
    name = workspace_name or unique_workspace_name()
    async with AsyncExitStack() as stack:
        simulated_agent: SimulatedAgent | None = None
        if coder_url is None:
            port = server_port or free_port()
            fake = simulated_deployment(clock, port)
            served = stack.enter_context(serve_fake_coder(fake))
            coder_url, token = served.url, served.token
            simulated_agent = SimulatedAgent(fake, clock, port, cold_start_s, name, say)
            say(0.0, "demo", f"Coder simulator on {coder_url}")
        if token is None:
            raise DemoError("a session token is needed for a real Coder deployment")
        client = await stack.enter_async_context(CoderClient(coder_url, token, clock=clock))
        if simulated_agent is None:
            deployment = await check_deployment(client)
            say(
                clock.now() - origin,
                "demo",
                f"Coder {deployment.version} at {client.authority} as {deployment.username}",
            )
        template_id = await _template_id(client, template or DEMO_TEMPLATE)
        watch = OfferWatch(clock)
        if model is None:
            answering: Model = DemoModel(clock, template_id, name, patience_s, watch)
            instructions = ""
        else:
            answering = WatchedModel(await stack.enter_async_context(model.open()), watch)
            instructions = REAL_MODEL_INSTRUCTIONS.format(template_id=template_id, workspace_name=name)
            say(clock.now() - origin, "demo", f"model {model.provider}:{model.model}")
        narrator = _Narrator(origin, say)
        try:
            result = await _run_turn(client, clock, answering, instructions, narrator, primer, simulated_agent, origin)
        except Exception:
            if simulated_agent is None and not keep:
                await _delete_workspace(client, name, clock, origin, say, quiet=True)
            raise
        if simulated_agent is None and not keep:
            await _delete_workspace(client, name, clock, origin, say)

    ready_at = simulated_agent.server_ready_at if simulated_agent is not None else None
    server_ready = None if ready_at is None else ready_at - origin
    offered = None if watch.first_offered_at is None else watch.first_offered_at - origin
    delay = None if offered is None or server_ready is None else offered - server_ready
    ok = watch.first_offered_step is not None
    return DemoSummary(
        ok=ok,
        strategy=primer.strategy,
        message=result.text if ok else "the workspace's MCP tools were never offered to the model",
        cold_start_s=cold_start_s if simulated_agent is not None else None,
        server_ready_s=server_ready,
        tools_offered_s=offered,
        delay_s=delay,
        primer_attempts=narrator.primer_attempts,
        first_step_with_workspace_tools=watch.first_offered_step,
        steps=result.steps,
        workspace_name=name,
        model=SCRIPTED_MODEL_NAME if model is None else f"{model.provider}:{model.model}",
    )


async def _template_id(client: CoderClient, wanted: str) -> str:
    templates = await client.templates()
    chosen = next((t for t in templates if t.name == wanted), None)
    if chosen is None:
        available = ", ".join(sorted(t.name for t in templates)) or "none"
        raise DemoError(
            f"no template named {wanted!r} on {client.authority} (available: {available}); pick one with --template"
        )
    return chosen.id


async def _run_turn(
    client: CoderClient,
    clock: Clock,
    model: Model,
    instructions: str,
    narrator: _Narrator,
    primer: PrimerSettings,
    simulated_agent: SimulatedAgent | None,
    origin: float,
) -> TurnResult:
    backend = CoderBackend(client)
    runtime = ChatRuntime(
        model,
        workspaces=CoderWorkspaces(backend),
        tools=[TakeNotes()],
        instructions=instructions,
        clock=clock,
        primer=primer,
        on_event=narrator,
    )
    try:
        async with anyio.create_task_group() as group:
            if simulated_agent is not None:
                group.start_soon(simulated_agent.run, origin)
            async with runtime:
                result = await runtime.run_turn(Chat(id="demo", owner="demo"), DEMO_PROMPT)
            group.cancel_scope.cancel()
    except* (DemoError, ModelError) as failures:
        raise _first_failure(failures) from None
    return result


def _first_failure(failures: BaseExceptionGroup[DemoError | ModelError]) -> DemoError | ModelError:
    """The first of the failures, out of however many groups the task groups wrapped it in."""
    first: BaseException = failures
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    assert isinstance(first, DemoError | ModelError)
    return first


async def _delete_workspace(
    client: CoderClient, name: str, clock: Clock, origin: float, say: Timeline, *, quiet: bool = False
) -> None:
    """Delete the demo's workspace and wait for the delete build; nothing to do if it was never created.

    ``quiet`` (the demo already failed): a failure to delete is told on the timeline, not raised over the
    first failure.
    """
    try:
        workspace = await client.workspace_by_name(name)
    except CoderNotFoundError:
        return

    class SayDeleting(LifecycleObserver):
        def build_posted(self, workspace: Workspace, build: WorkspaceBuild) -> None:
            say(clock.now() - origin, "demo", f"deleting workspace {name} (build #{build.build_number})")

    lifecycle = CoderLifecycle(client, DELETE_READINESS, clock=clock)
    try:
        outcome = await lifecycle.delete(workspace.id, observer=SayDeleting())
        failure = None if outcome.failure is None else outcome.failure.message
    except CoderError as exc:
        failure = str(exc)
    if failure is not None:
        reason = f"could not delete workspace {name} on {client.authority}: {failure}; delete it in Coder"
        if not quiet:
            raise DemoError(reason) from None
        say(clock.now() - origin, "demo", reason)
        return
    say(clock.now() - origin, "demo", f"workspace {name} deleted (pass --keep to keep it)")
