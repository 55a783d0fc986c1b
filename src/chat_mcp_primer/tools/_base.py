"""What the workspace lifecycle tools share: their per-turn context and the build-then-ready flow."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import anyio

from chat_mcp_primer.model import ToolResult, ToolSpec, WorkspaceBinding
from chat_mcp_primer.workspace import coder
from chat_mcp_primer.workspace.coder import (
    CoderBackend,
    CoderError,
    CoderNotFoundError,
    CoderWorkspaceDeletedError,
    Result,
    Transition,
    Workspace,
    WorkspaceAgent,
    WorkspaceBuild,
    build_when_idle,
)
from chat_mcp_primer.workspace.coder import (
    settle as settle_workspace,
)
from chat_mcp_primer.workspace_mcp import TurnWorkspace

NO_WORKSPACE = "This chat has no workspace yet; use create_workspace first."
DELETED = "The chat's workspace was deleted; use create_workspace to make a new one."


@dataclass(frozen=True, slots=True)
class ToolContext:
    """One turn's view for the lifecycle tools: the backend, the turn's workspace state, the chat's lock."""

    backend: CoderBackend
    turn: TurnWorkspace
    lock: anyio.Lock


def schema(properties: Mapping[str, Any] | None = None, required: tuple[str, ...] = ()) -> Mapping[str, Any]:
    body: dict[str, Any] = {"type": "object", "properties": dict(properties or {}), "additionalProperties": False}
    if required:
        body["required"] = list(required)
    return MappingProxyType(body)


class LifecycleTool:
    """A workspace lifecycle tool: serialised per chat by the chat's lock, failures returned as results."""

    spec: ToolSpec

    def __init__(self, context: ToolContext) -> None:
        self.context = context

    async def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        async with self.context.lock:
            try:
                result = await self.run(arguments)
            except CoderError as exc:
                return ToolResult.json({"error": str(exc)}, is_error=True)
        return ToolResult.json(result, is_error="error" in result)

    async def run(self, arguments: Mapping[str, Any]) -> Result:
        raise NotImplementedError


def optional_str(arguments: Mapping[str, Any], name: str) -> str | None:
    value = arguments.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise CoderError(f"argument {name!r} must be a string")
    return value


def string_map(arguments: Mapping[str, Any], name: str) -> dict[str, str]:
    value = arguments.get(name) or {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise CoderError(f"argument {name!r} must be an object of parameter names to values")
    return {key: item if isinstance(item, str) else json.dumps(item) for key, item in value.items()}


async def bound_workspace(context: ToolContext) -> Workspace | Result:
    """The chat's workspace, or the result to give the model when it has none or it was deleted."""
    binding = context.turn.binding
    if binding is None:
        return {"error": NO_WORKSPACE}
    try:
        return await context.backend.client.workspace(binding.workspace_id)
    except (CoderNotFoundError, CoderWorkspaceDeletedError):
        return {"error": DELETED}


async def settled_workspace(context: ToolContext) -> Workspace | Result:
    """The chat's workspace once any build in progress has finished, or the result for a missing one."""
    workspace = await bound_workspace(context)
    if isinstance(workspace, dict):
        return workspace
    return await settle(context, workspace)


async def settle(context: ToolContext, workspace: Workspace) -> Workspace:
    backend = context.backend
    return await settle_workspace(backend.client, workspace, backend.clock, backend.readiness)


async def post_build(
    context: ToolContext, workspace: Workspace, transition: Transition, version_id: str | None = None
) -> WorkspaceBuild:
    backend = context.backend
    return await build_when_idle(
        backend.client, workspace, transition, backend.clock, backend.readiness, template_version_id=version_id
    )


async def stop_and_wait(context: ToolContext, workspace: Workspace) -> Result:
    """Stop the workspace, binding the chat to the stop build: ``{"build_id"}``, or the failure with ``error``."""
    backend = context.backend

    def bind_stop(build: WorkspaceBuild) -> None:
        context.turn.bind(WorkspaceBinding(workspace.id, build_id=build.id))

    return await coder.stop_and_wait(backend.client, workspace, backend.clock, backend.readiness, on_build=bind_stop)


async def ready_after_build(
    context: ToolContext, workspace: Workspace, build: WorkspaceBuild, *, fresh: bool = True
) -> Result:
    """Bind the chat to ``build``, wait for it and for its agent, then notify the runtime (the primer runs).

    Returns the result keys: ``build_id`` always; a build failure as ``error``; otherwise the agent's
    readiness (``agent_status`` or the startup-script keys, nothing when ready).
    """
    backend = context.backend
    context.turn.bind(WorkspaceBinding(workspace.id, build_id=build.id))
    picked: list[WorkspaceAgent] = []
    result = await coder.ready_after_build(
        backend.client, build, backend.clock, backend.readiness, on_agent=_binder(context, workspace, build, picked)
    )
    if picked:
        # The post-ready notification, on every path and whatever the readiness outcome: it starts the primer.
        context.turn.agent_ready(fresh=fresh)
    return result


async def ready_agent(
    context: ToolContext, workspace: Workspace, build: WorkspaceBuild, *, fresh: bool = True
) -> Result:
    """Select the chat's agent in a finished build, wait for it to be ready, and notify the runtime.

    ``fresh`` is False when the tool found the build already running or in progress, rather than
    starting it (see `TurnWorkspace.agent_ready`).
    """
    backend = context.backend
    picked: list[WorkspaceAgent] = []
    result = await coder.ready_agent(
        backend.client, build, backend.clock, backend.readiness, on_agent=_binder(context, workspace, build, picked)
    )
    if picked:
        context.turn.agent_ready(fresh=fresh)
    return result


def _binder(
    context: ToolContext, workspace: Workspace, build: WorkspaceBuild, picked: list[WorkspaceAgent]
) -> Callable[[WorkspaceAgent], None]:
    def bind_agent(agent: WorkspaceAgent) -> None:
        picked.append(agent)
        context.turn.bind(WorkspaceBinding(workspace.id, build_id=build.id, agent_id=agent.id))

    return bind_agent
