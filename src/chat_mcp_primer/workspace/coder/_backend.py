"""`CoderBackend`: a Coder deployment as a workspace backend, including the MCP endpoints of its agents."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from chat_mcp_primer.clock import Clock
from chat_mcp_primer.model import WorkspaceBinding
from chat_mcp_primer.workspace._endpoints import AgentMcp, EndpointHealth, McpEndpoint, origin_of
from chat_mcp_primer.workspace.coder._client import TOKEN_COOKIE, CoderClient, path_segment
from chat_mcp_primer.workspace.coder._domain import (
    AppHealth,
    JobStatus,
    Transition,
    Workspace,
    WorkspaceAgent,
    WorkspaceApp,
)
from chat_mcp_primer.workspace.coder._errors import CoderNotFoundError, CoderWorkspaceDeletedError
from chat_mcp_primer.workspace.coder._readiness import AgentSelectionError, ReadinessSettings, select_agent

MCP_SLUG = "mcp"
MCP_SLUG_SUFFIX = "-mcp"


def is_mcp_app(app: WorkspaceApp) -> bool:
    """The default rule: an app whose slug is ``mcp`` or ends in ``-mcp`` is an MCP server."""
    return app.slug == MCP_SLUG or app.slug.endswith(MCP_SLUG_SUFFIX)


def server_name(slug: str) -> str:
    """The tool prefix for an app: ``github-mcp`` serves ``github__*`` tools, ``mcp`` serves ``mcp__*``."""
    if slug != MCP_SLUG and slug.endswith(MCP_SLUG_SUFFIX):
        return slug[: -len(MCP_SLUG_SUFFIX)]
    return slug


_HEALTH = {
    AppHealth.HEALTHY: EndpointHealth.HEALTHY,
    AppHealth.INITIALIZING: EndpointHealth.INITIALIZING,
    AppHealth.UNHEALTHY: EndpointHealth.UNHEALTHY,
    AppHealth.DISABLED: EndpointHealth.UNKNOWN,
}


def _readiness_signature(workspace: Workspace) -> tuple[object, ...]:
    """What about a workspace can make its MCP servers reachable: its build, agent states, app health."""
    build = workspace.latest_build
    agents = tuple(
        (agent.id, agent.status, agent.lifecycle_state, tuple((app.slug, app.health) for app in agent.apps))
        for agent in build.agents
    )
    return (build.id, build.job.status, agents)


@dataclass(frozen=True, slots=True)
class McpAppSettings:
    """Which workspace apps are MCP servers, and where their Streamable HTTP endpoint is under the app."""

    is_mcp_app: Callable[[WorkspaceApp], bool] = is_mcp_app
    # The Streamable HTTP path inside the app, the SDK's default mount point.
    mcp_path: str = "mcp"


@dataclass(slots=True)
class CoderBackend:
    """A Coder deployment: lifecycle operations for the workspace tools, and the MCP endpoints of agents.

    MCP servers run as workspace apps and are reached through Coder's path-based app proxy,
    ``{coder_url}/@{owner}/{workspace}.{agent}/apps/{slug}/{mcp_path}``, authenticated with the same
    session token, sent as the ``coder_session_token`` cookie: Coder's app proxy strips its own cookies
    before the request reaches the app, but forwards a ``Coder-Session-Token`` header, which would hand
    the user's full-scope token to whatever server runs in the workspace. The app's health is passed on
    as a readiness hint. The endpoints are bound to the deployment's origin: the token they carry is never
    sent anywhere else (see `McpEndpoint.origin`).
    """

    client: CoderClient
    readiness: ReadinessSettings = field(default_factory=ReadinessSettings)
    apps: McpAppSettings = field(default_factory=McpAppSettings)

    @property
    def clock(self) -> Clock:
        return self.client.clock

    def endpoints(self, workspace: Workspace, agent: WorkspaceAgent) -> tuple[McpEndpoint, ...]:
        owner, name, agent_name = (path_segment(part) for part in (workspace.owner_name, workspace.name, agent.name))
        base = f"{self.client.url}/@{owner}/{name}.{agent_name}/apps"
        return tuple(
            McpEndpoint(
                server=server_name(app.slug),
                url=f"{base}/{path_segment(app.slug)}/{self.apps.mcp_path}",
                headers={"Cookie": f"{TOKEN_COOKIE}={self.client.token}"},
                health=_HEALTH[app.health],
                verify_tls=self.client.settings.verify_tls,
                origin=origin_of(self.client.url),
            )
            for app in agent.apps
            if self.apps.is_mcp_app(app)
        )

    async def changes(self, binding: WorkspaceBinding) -> AsyncIterator[str]:
        """Yields whenever the workspace's build, agents or app health change, from Coder's watch stream."""
        previous: tuple[object, ...] | None = None
        async for workspace in self.client.watch(binding.workspace_id):
            signature = _readiness_signature(workspace)
            if previous is not None and signature != previous:
                yield "workspace changed"
            previous = signature

    async def current_agent(self, binding: WorkspaceBinding) -> AgentMcp | None:
        """The chat's agent in the workspace's latest build, with its MCP endpoints; None when there is none.

        None for a deleted workspace, a stopped one, a build still in progress or failed, or a build
        whose agents name no agent for the chat.
        """
        try:
            workspace = await self.client.workspace(binding.workspace_id)
        except (CoderNotFoundError, CoderWorkspaceDeletedError):
            return None
        build = workspace.latest_build
        if build.transition is not Transition.START or build.job.status is not JobStatus.SUCCEEDED:
            return None
        agent = next((a for a in build.agents if a.id == binding.agent_id), None)
        if agent is None:
            try:
                agent = select_agent(build.agents)
            except AgentSelectionError:
                return None
        return AgentMcp(workspace_id=workspace.id, agent_id=agent.id, endpoints=self.endpoints(workspace, agent))
