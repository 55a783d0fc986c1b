"""`CoderBackend`: a Coder deployment as a workspace backend, including the MCP endpoints of its agents."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from chat_mcp_primer.clock import Clock
from chat_mcp_primer.model import WorkspaceBinding
from chat_mcp_primer.workspace._endpoints import AgentMcp, EndpointHealth, McpEndpoint, origin_of
from chat_mcp_primer.workspace.coder._app_urls import WildcardHost, path_app_root, subdomain_name
from chat_mcp_primer.workspace.coder._client import TOKEN_COOKIE, CoderClient
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
    # Where the app may publish a discovery report (the workspace gateway's); "" to look for none.
    report_path: str = "discovery"


@dataclass(slots=True)
class CoderBackend:
    """A Coder deployment: lifecycle operations for the workspace tools, and the MCP endpoints of agents.

    MCP servers run as workspace apps and are reached through Coder's app proxy: a path-based app at
    ``{coder_url}/@{owner}/{workspace}.{agent}/apps/{slug}/{mcp_path}``, a subdomain app at
    ``{scheme}://{slug}--{agent}--{workspace}--{owner}{suffix}/{mcp_path}`` under the deployment's wildcard
    access URL (asked of the deployment once, the first time a subdomain MCP app shows up). Both are
    authenticated with the same session token, sent as the ``coder_session_token`` cookie: Coder's app
    proxy strips its own cookies before the request reaches the app, but forwards a
    ``Coder-Session-Token`` header, which would hand the user's full-scope token to whatever server runs
    in the workspace. The app's health is passed on as a readiness hint. Each endpoint is bound to the
    origin Coder serves the app on (see `McpEndpoint.origin`): the token it carries is never sent anywhere
    else.
    """

    client: CoderClient
    readiness: ReadinessSettings = field(default_factory=ReadinessSettings)
    apps: McpAppSettings = field(default_factory=McpAppSettings)
    # The deployment's wildcard app host once asked for; a deployment's is fixed while it runs.
    _wildcard: WildcardHost | None = field(default=None, init=False, repr=False)
    _wildcard_known: bool = field(default=False, init=False, repr=False)

    @property
    def clock(self) -> Clock:
        return self.client.clock

    async def wildcard_host(self) -> WildcardHost | None:
        """The deployment's wildcard app host (None: it serves no subdomain apps), asked for once.

        Raises `CoderError` when the deployment cannot say, or says what is not a host pattern
        (`AppUrlError`); nothing is remembered then."""
        if not self._wildcard_known:
            self._wildcard = WildcardHost.parse(await self.client.applications_host())
            self._wildcard_known = True
        return self._wildcard

    def endpoints(
        self, workspace: Workspace, agent: WorkspaceAgent, *, wildcard: WildcardHost | None = None
    ) -> tuple[McpEndpoint, ...]:
        """The MCP endpoints of ``agent``'s apps. A subdomain app is reached at its own host under
        ``wildcard``, the deployment's `wildcard_host`; without one, at its path, where Coder's proxy
        serves every app of an agent (unless the deployment disables path-based apps, which the proxy
        then says). Raises `AppUrlError` when coderd names an app's host with what a host cannot hold."""
        return tuple(self._endpoint(workspace, agent, app, wildcard) for app in agent.apps if self.apps.is_mcp_app(app))

    def _endpoint(
        self, workspace: Workspace, agent: WorkspaceAgent, app: WorkspaceApp, wildcard: WildcardHost | None
    ) -> McpEndpoint:
        if app.subdomain and wildcard is not None:
            label = app.subdomain_name or subdomain_name(app.slug, agent.name, workspace.name, workspace.owner_name)
            root = wildcard.app_origin(urlsplit(self.client.url).scheme, label)
            return self._reached_at(app, root, origin_of(root))
        root = path_app_root(self.client.url, workspace.owner_name, workspace.name, agent.name, app.slug)
        return self._reached_at(app, root, origin_of(self.client.url))

    def _reached_at(self, app: WorkspaceApp, root: str, origin: str) -> McpEndpoint:
        return McpEndpoint(
            server=server_name(app.slug),
            url=f"{root}/{self.apps.mcp_path}",
            report_url=f"{root}/{self.apps.report_path}" if self.apps.report_path else None,
            headers={"Cookie": f"{TOKEN_COOKIE}={self.client.token}"},
            health=_HEALTH[app.health],
            verify_tls=self.client.settings.verify_tls,
            origin=origin,
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
        wildcard = None
        if any(app.subdomain and self.apps.is_mcp_app(app) for app in agent.apps):
            wildcard = await self.wildcard_host()
        endpoints = self.endpoints(workspace, agent, wildcard=wildcard)
        return AgentMcp(workspace_id=workspace.id, agent_id=agent.id, endpoints=endpoints)
