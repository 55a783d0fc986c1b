"""`ProvisionTool`: a stand-in for ``create_workspace``, for turns on a workspace backend other than Coder."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from chat_mcp_primer.model import ToolResult, ToolSpec, WorkspaceBinding


class ProvisionedTurn(Protocol):
    """What a provisioning tool tells its turn (`TurnWorkspace` is one): which workspace, build and agent
    the chat is bound to now, and that the agent finished its readiness wait."""

    def bind(self, binding: WorkspaceBinding | None) -> None: ...

    def agent_ready(self) -> None: ...


class ProvisionTool:
    """A tool the model calls to "create" a workspace that already exists, such as one of `InMemoryWorkspaces`.

    Each call tells the turn what a real provisioning tool tells it, in the same order: the chat is bound
    to a build of ``ready``'s workspace (no agent yet), then to ``ready`` itself (its agent is up), and the
    agent is reported ready, which launches the primer. ``before`` is awaited first: the provisioning
    itself, e.g. ``lambda: clock.sleep(30)`` for a slow boot on the test's clock; ``after`` runs once the
    agent is reported ready. The result is ``{"created": true, "workspace_name": <workspace id>}``.

    Use it in ``ChatRuntime(workspaces=WorkspacesFrom(source, tools=lambda turn: [ProvisionTool(turn, ready)]))``.
    """

    def __init__(
        self,
        turn: ProvisionedTurn,
        ready: WorkspaceBinding,
        *,
        name: str = "provision",
        before: Callable[[], Awaitable[None]] | None = None,
        after: Callable[[], None] | None = None,
    ) -> None:
        if ready.agent_id is None:
            raise ValueError("ProvisionTool needs a binding with the agent it reports ready")
        self.spec = ToolSpec(name=name, description="Create a workspace and wait for its agent.")
        self._turn = turn
        self._ready = ready
        self._before = before
        self._after = after

    async def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        if self._before is not None:
            await self._before()
        self._turn.bind(WorkspaceBinding(self._ready.workspace_id, build_id=self._ready.build_id))
        self._turn.bind(self._ready)
        self._turn.agent_ready()
        if self._after is not None:
            self._after()
        return ToolResult.json({"created": True, "workspace_name": self._ready.workspace_id})
