"""What the workspace lifecycle tools share: their per-turn context, the turn's observer, argument parsing."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from chat_mcp_primer._errors import ToolArgumentError
from chat_mcp_primer.events import EventName
from chat_mcp_primer.model import ToolResult, ToolSpec, WorkspaceBinding
from chat_mcp_primer.tools._render import NO_WORKSPACE, Result, render_outcome
from chat_mcp_primer.tools.descriptions import CHAT, describe
from chat_mcp_primer.workspace.coder import (
    AgentReadiness,
    CoderBackend,
    CoderError,
    CoderLifecycle,
    KeyedLocks,
    LifecycleObserver,
    LifecycleOutcome,
    Workspace,
    WorkspaceAgent,
    WorkspaceBuild,
)
from chat_mcp_primer.workspace_mcp import TurnWorkspace


@dataclass(frozen=True, slots=True)
class ToolContext:
    """One turn's view for the lifecycle tools: the backend and its lifecycle service, the turn's workspace
    state, and the locks that serialise each chat's tools."""

    backend: CoderBackend
    lifecycle: CoderLifecycle
    turn: TurnWorkspace
    locks: KeyedLocks


def schema(properties: Mapping[str, Any] | None = None, required: tuple[str, ...] = ()) -> Mapping[str, Any]:
    body: dict[str, Any] = {"type": "object", "properties": dict(properties or {}), "additionalProperties": False}
    if required:
        body["required"] = list(required)
    return MappingProxyType(body)


def chat_spec(name: str, input_schema: Mapping[str, Any] | None = None) -> ToolSpec:
    """The chat's tool ``name``, described as `describe` describes it for the chat's workspace."""
    return ToolSpec(name=name, description=describe(name, CHAT), input_schema=input_schema or schema())


class TurnObserver(LifecycleObserver):
    """Binds the turn to each build and agent the operation settles on, tells the chat's events how the
    waited build and agent move on (``workspace.build_progress``, ``workspace.agent_progress``), and tells
    the turn once the agent's wait ended, whatever the outcome: that notification starts the primer."""

    def __init__(self, turn: TurnWorkspace) -> None:
        self._turn = turn

    def build_joined(self, workspace: Workspace, build: WorkspaceBuild) -> None:
        self._turn.bind(WorkspaceBinding(workspace.id, build_id=build.id))

    def build_posted(self, workspace: Workspace, build: WorkspaceBuild) -> None:
        self._turn.bind(WorkspaceBinding(workspace.id, build_id=build.id))

    def build_progress(self, workspace: Workspace, build: WorkspaceBuild) -> None:
        self._turn.events.emit(
            EventName.WORKSPACE_BUILD_PROGRESS,
            workspace_id=workspace.id,
            build_id=build.id,
            transition=build.transition.value,
            status=build.job.status.value,
        )

    def agent_selected(self, workspace: Workspace, build: WorkspaceBuild, agent: WorkspaceAgent) -> None:
        self._turn.bind(WorkspaceBinding(workspace.id, build_id=build.id, agent_id=agent.id))

    def agent_progress(self, workspace: Workspace, agent: WorkspaceAgent) -> None:
        self._turn.events.emit(
            EventName.WORKSPACE_AGENT_PROGRESS,
            workspace_id=workspace.id,
            agent_id=agent.id,
            status=agent.status.value,
            lifecycle_state=agent.lifecycle_state.value,
        )

    def agent_waited(self, agent: WorkspaceAgent, readiness: AgentReadiness, *, fresh: bool) -> None:
        self._turn.agent_ready(fresh=fresh)


class LifecycleTool:
    """A workspace lifecycle tool: serialised per chat, failures (and bad arguments) returned as results."""

    spec: ToolSpec

    def __init__(self, context: ToolContext) -> None:
        self.context = context
        self.observer = TurnObserver(context.turn)

    async def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        async with self.context.locks.hold(self.context.turn.chat_id):
            try:
                result = await self.run(arguments)
            except (CoderError, ToolArgumentError) as exc:
                return ToolResult.json({"error": str(exc)}, is_error=True)
        return ToolResult.json(result, is_error="error" in result)

    async def run(self, arguments: Mapping[str, Any]) -> Result:
        raise NotImplementedError

    async def on_chat_workspace(self, operation: Callable[[str], Awaitable[LifecycleOutcome]]) -> Result:
        """``operation`` on the chat's workspace, rendered; the chat's lack of one as its own result."""
        binding = self.context.turn.binding
        if binding is None:
            return {"error": NO_WORKSPACE}
        return render_outcome(await operation(binding.workspace_id), CHAT)


def optional_str(arguments: Mapping[str, Any], name: str) -> str | None:
    value = arguments.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ToolArgumentError(f"argument {name!r} must be a string")
    return value


def string_map(arguments: Mapping[str, Any], name: str) -> dict[str, str]:
    value = arguments.get(name) or {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ToolArgumentError(f"argument {name!r} must be an object of parameter names to values")
    return {key: parameter_value(item) for key, item in value.items()}


def parameter_value(value: object) -> str:
    """Coder takes every rich parameter value as a string; JSON spells numbers and booleans as Coder does."""
    return value if isinstance(value, str) else json.dumps(value)
