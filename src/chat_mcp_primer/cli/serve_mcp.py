"""``chat-mcp-primer serve-mcp``: the workspace lifecycle tools as an MCP server, over stdio or Streamable HTTP.

The chat's lifecycle tools act on the chat's own workspace; these act on any workspace of the token's
user, named by id or by name. They follow the same choreography (the shared Coder recipes) and answer
with the same result keys, as JSON objects; failures are results with ``isError`` set, never crashes.
"""

from __future__ import annotations

import errno
import hmac
import ipaddress
import json
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Literal

import anyio
import structlog
import typer
import uvicorn
from mcp.server import MCPServer
from mcp.types import CallToolResult, TextContent
from pydantic import Field
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from chat_mcp_primer.cli._app import EXIT_FAILURE, EXIT_INTERRUPTED, app
from chat_mcp_primer.cli._options import CODER_URL_HELP, parse_coder_url, positive_seconds
from chat_mcp_primer.tools.list_templates import describe_templates
from chat_mcp_primer.workspace.coder import (
    CoderClient,
    CoderError,
    CoderNotFoundError,
    ReadinessSettings,
    Result,
    Transition,
    Workspace,
    WorkspaceAgent,
    WorkspaceBuild,
    build_when_idle,
    check_deployment,
    is_mcp_app,
    is_running,
    is_stopped,
    ready_after_build,
    ready_agent,
    server_name,
    settle,
    stop_and_wait,
    version_refusal,
)

COMMAND_NAME = "serve-mcp"
SERVER_NAME = "chat-mcp-primer"
CODER_URL_ENV = "CODER_URL"
CODER_TOKEN_ENV = "CODER_SESSION_TOKEN"
BEARER_TOKEN_ENV = "CHAT_MCP_PRIMER_BEARER_TOKEN"
# The SDK's default mount point, so clients can use the URL they would guess.
MCP_PATH = "/mcp"
# Port 0 would ask the OS for a random port nobody could learn; 65535 is the largest TCP port.
MIN_PORT = 1
MAX_PORT = 65535
HTTP_UNAUTHORIZED = 401
# RFC 6455's close code for a peer that broke the server's policy (here: no valid bearer token).
WEBSOCKET_POLICY_VIOLATION = 1008
# Seconds uvicorn gives open requests (a long create_workspace) after Ctrl-C before it drops them.
GRACEFUL_SHUTDOWN_SECONDS = 5
# uvicorn's own listen backlog: connections that may queue while the server is busy accepting.
LISTEN_BACKLOG = 2048

_DEFAULT_READINESS = ReadinessSettings()
_log = structlog.get_logger("chat_mcp_primer.serve_mcp")

SERVER_INSTRUCTIONS = (
    "Workspace lifecycle tools for one Coder deployment, acting as the user whose session token the server "
    "holds. A `workspace` argument is a workspace id or name (names compare case-insensitively). Tools that "
    "build wait for the build and for the workspace agent to be ready before they answer."
)

WorkspaceRef = Annotated[str, Field(description="Workspace id or name (case-insensitive).")]


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


# The same levels in the SDK's spelling (MCPServer configures the standard library's logging with it).
_SDK_LOG_LEVELS: dict[LogLevel, Literal["DEBUG", "INFO", "WARNING", "ERROR"]] = {
    LogLevel.DEBUG: "DEBUG",
    LogLevel.INFO: "INFO",
    LogLevel.WARNING: "WARNING",
    LogLevel.ERROR: "ERROR",
}


class ToolArgumentError(Exception):
    """An argument the tool cannot use; reported to the caller as an error result."""


# -- the operations ---------------------------------------------------------------------------------


def _looks_like_id(reference: str) -> bool:
    # Only the canonical hyphenated form (36 characters) counts: Coder names are at most 32 characters, so it can
    # never be a name, while 32 bare hex digits, which `uuid.UUID` would also accept, can.
    try:
        return str(uuid.UUID(reference)) == reference.lower()
    except ValueError:
        return False


def _agent_status(agent: WorkspaceAgent) -> Result:
    return {
        "id": agent.id,
        "name": agent.name,
        "parent_id": agent.parent_id,
        "status": agent.status.value,
        "lifecycle_state": agent.lifecycle_state.value,
        "mcp_apps": [
            {"slug": app.slug, "server": server_name(app.slug), "health": app.health.value}
            for app in agent.apps
            if is_mcp_app(app)
        ],
    }


@dataclass(slots=True)
class WorkspaceLifecycle:
    """The lifecycle operations on one Coder deployment, for workspaces named by id or name.

    Each operation returns the result object the chat's tool of the same name returns (``created``,
    ``started``, ``stopped``, ``restarted``, ``updated``, ``workspace_name``, ``build_id``, the agent's
    readiness keys, and ``error`` on failure). Operations on one workspace run one at a time, in the order
    they acquire its lock; each re-reads the workspace once it holds the lock. A `CoderError` or
    `ToolArgumentError` propagates; `tool_result` turns it into an error result.
    """

    client: CoderClient
    readiness: ReadinessSettings = field(default_factory=ReadinessSettings)
    _locks: dict[str, anyio.Lock] = field(default_factory=dict)

    async def find(self, reference: str) -> Workspace:
        """The workspace with this id, or else the caller's workspace with this name (case-insensitive)."""
        reference = reference.strip()
        if not reference:
            raise ToolArgumentError("workspace is required: give a workspace id or name")
        if not _looks_like_id(reference):
            return await self.client.workspace_by_name(reference)
        try:
            return await self.client.workspace(reference)
        except CoderNotFoundError:
            raise CoderNotFoundError(f"No workspace with id {reference!r}.", status=404) from None

    @asynccontextmanager
    async def _exclusive(self, reference: str) -> AsyncIterator[Workspace]:
        workspace = await self.find(reference)
        async with self._locks.setdefault(workspace.id, anyio.Lock()):
            yield await self.client.workspace(workspace.id)

    async def list_templates(self) -> Result:
        return describe_templates(await self.client.templates())

    async def create_workspace(
        self, template_id: str, name: str, parameters: dict[str, str], preset_id: str | None
    ) -> Result:
        workspace = await self.client.create_workspace(
            name=name, template_id=template_id, preset_id=preset_id, parameters=parameters
        )
        async with self._locks.setdefault(workspace.id, anyio.Lock()):
            result = await self._ready_after_build(workspace.latest_build)
        return {"created": "error" not in result, "workspace_name": workspace.name, **result}

    async def start_workspace(self, reference: str) -> Result:
        async with self._exclusive(reference) as workspace:
            build = workspace.latest_build
            if build.job.status.active and build.transition is Transition.START:
                result = await self._ready_after_build(build)
                return {"started": "error" not in result, "workspace_name": workspace.name, **result}
            workspace = await settle(self.client, workspace, self.client.clock, self.readiness)
            if is_running(workspace):
                result = await self._ready_agent(workspace.latest_build)
                return {"started": True, "already_running": True, "workspace_name": workspace.name, **result}
            extra: Result = {}
            version = None
            if workspace.template_require_active_version and workspace.outdated:
                version = workspace.template_active_version_id
                extra = {
                    "updated_to_active_version": True,
                    "message": "The template requires its active version, so the workspace was updated to it.",
                }
            result = await self._start(workspace, version)
            return {"started": "error" not in result, "workspace_name": workspace.name, **extra, **result}

    async def stop_workspace(self, reference: str) -> Result:
        async with self._exclusive(reference) as workspace:
            workspace = await settle(self.client, workspace, self.client.clock, self.readiness)
            if is_stopped(workspace):
                return {"stopped": True, "no_build": True, "workspace_name": workspace.name}
            result = await self._stop(workspace)
            return {"stopped": "error" not in result, "workspace_name": workspace.name, **result}

    async def restart_workspace(self, reference: str) -> Result:
        async with self._exclusive(reference) as workspace:
            workspace = await settle(self.client, workspace, self.client.clock, self.readiness)
            if is_running(workspace):
                stopped = await self._stop(workspace)
                if "error" in stopped:
                    return {"restarted": False, "workspace_name": workspace.name, **stopped}
            result = await self._start(workspace, None)
            return {"restarted": "error" not in result, "workspace_name": workspace.name, **result}

    async def update_workspace(self, reference: str, template_version_id: str | None) -> Result:
        async with self._exclusive(reference) as workspace:
            version_id = template_version_id or workspace.template_active_version_id
            refusal = await version_refusal(self.client, workspace, version_id)
            if refusal is not None:
                return {"updated": False, "workspace_name": workspace.name, "error": refusal}
            workspace = await settle(self.client, workspace, self.client.clock, self.readiness)
            if is_running(workspace):
                stopped = await self._stop(workspace)
                if "error" in stopped:
                    return {"updated": False, "workspace_name": workspace.name, **stopped}
            result = await self._start(workspace, version_id)
            return {
                "updated": "error" not in result,
                "workspace_name": workspace.name,
                "template_version_id": version_id,
                **result,
            }

    async def workspace_status(self, reference: str) -> Result:
        """The workspace as it is now; never waits and never builds."""
        workspace = await self.find(reference)
        build = workspace.latest_build
        result: Result = {
            "workspace_id": workspace.id,
            "workspace_name": workspace.name,
            "owner_name": workspace.owner_name,
            "status": build.status.value,
            "transition": build.transition.value,
            "job_status": build.job.status.value,
            "build_id": build.id,
            "template_id": workspace.template_id,
            "template_name": workspace.template_name,
            "template_version_id": build.template_version_id,
            "template_active_version_id": workspace.template_active_version_id,
            "outdated": workspace.outdated,
            "agents": [_agent_status(agent) for agent in build.agents],
        }
        if build.job.error:
            result["job_error"] = build.job.error
        if build.job.error_code:
            result["error_code"] = build.job.error_code
        return result

    # -- the steps the operations share, as the chat tools take them ----------------------------------

    async def _stop(self, workspace: Workspace) -> Result:
        """Stop and wait: ``{"build_id"}`` when the stop succeeded, else the failure with ``error``."""
        return await stop_and_wait(self.client, workspace, self.client.clock, self.readiness)

    async def _start(self, workspace: Workspace, version_id: str | None) -> Result:
        build = await build_when_idle(
            self.client, workspace, Transition.START, self.client.clock, self.readiness, template_version_id=version_id
        )
        return await self._ready_after_build(build)

    async def _ready_after_build(self, build: WorkspaceBuild) -> Result:
        return await ready_after_build(self.client, build, self.client.clock, self.readiness)

    async def _ready_agent(self, build: WorkspaceBuild) -> Result:
        return await ready_agent(self.client, build, self.client.clock, self.readiness)


# -- the MCP server ---------------------------------------------------------------------------------


async def tool_result(tool: str, operation: Awaitable[Result]) -> CallToolResult:
    """The operation's result as an MCP tool result: the JSON object as text and as structured content,
    ``isError`` exactly when it has an ``error`` key. A `CoderError` or `ToolArgumentError` becomes
    ``{"error": message}``; anything else propagates (the SDK answers it as a generic error result)."""
    try:
        result = await operation
    except (CoderError, ToolArgumentError) as exc:
        result = {"error": str(exc)}
    is_error = "error" in result
    _log.info("serve_mcp.tool_call", tool=tool, outcome="error" if is_error else "ok")
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(result, sort_keys=True))],
        structured_content=result,
        is_error=is_error,
    )


def _parameter_values(parameters: dict[str, str | int | float | bool] | None) -> dict[str, str]:
    # Coder takes every rich parameter value as a string; JSON spells numbers and booleans as Coder does.
    return {name: value if isinstance(value, str) else json.dumps(value) for name, value in (parameters or {}).items()}


def build_server(lifecycle: WorkspaceLifecycle, *, log_level: LogLevel = LogLevel.WARNING) -> MCPServer:
    """An `MCPServer` serving the seven workspace tools over ``lifecycle``."""
    server: MCPServer = MCPServer(SERVER_NAME, instructions=SERVER_INSTRUCTIONS, log_level=_SDK_LOG_LEVELS[log_level])

    async def list_templates() -> CallToolResult:
        return await tool_result("list_templates", lifecycle.list_templates())

    async def create_workspace(
        template_id: Annotated[str, Field(description="Template id from list_templates.")],
        name: Annotated[str, Field(description="Name of the new workspace (letters, digits, hyphens).")],
        parameters: Annotated[
            dict[str, str | int | float | bool] | None, Field(description="Template parameter values by name.")
        ] = None,
        preset_id: Annotated[str | None, Field(description="Template version preset id.")] = None,
    ) -> CallToolResult:
        operation = lifecycle.create_workspace(template_id, name, _parameter_values(parameters), preset_id or None)
        return await tool_result("create_workspace", operation)

    async def start_workspace(workspace: WorkspaceRef) -> CallToolResult:
        return await tool_result("start_workspace", lifecycle.start_workspace(workspace))

    async def stop_workspace(workspace: WorkspaceRef) -> CallToolResult:
        return await tool_result("stop_workspace", lifecycle.stop_workspace(workspace))

    async def restart_workspace(workspace: WorkspaceRef) -> CallToolResult:
        return await tool_result("restart_workspace", lifecycle.restart_workspace(workspace))

    async def update_workspace(
        workspace: WorkspaceRef,
        template_version_id: Annotated[
            str | None, Field(description="Target template version id (default: the template's active version).")
        ] = None,
    ) -> CallToolResult:
        operation = lifecycle.update_workspace(workspace, template_version_id or None)
        return await tool_result("update_workspace", operation)

    async def workspace_status(workspace: WorkspaceRef) -> CallToolResult:
        return await tool_result("workspace_status", lifecycle.workspace_status(workspace))

    tools: dict[Callable[..., Awaitable[CallToolResult]], str] = {
        list_templates: "List the workspace templates to create a workspace from (id, name, description).",
        create_workspace: "Create a workspace from a template and wait until its agent is ready.",
        start_workspace: "Start a workspace if it is stopped, and wait until its agent is ready.",
        stop_workspace: "Stop a workspace and wait until the stop has finished.",
        restart_workspace: "Restart a workspace (stop, then start on the same template version) and wait until ready.",
        update_workspace: (
            "Update a workspace to a template version (default: the template's active version): stop it, start it "
            "on that version, and wait until it is ready."
        ),
        workspace_status: (
            "Show a workspace: status, template and version, whether it is outdated, its agents (status and "
            "lifecycle) and their MCP apps with their health. Never changes anything."
        ),
    }
    for function, description in tools.items():
        server.add_tool(function, name=function.__name__, description=description)
    return server


class BearerTokenMiddleware:
    """Lets requests through only with ``Authorization: Bearer <token>``: other HTTP requests get 401, other
    WebSocket handshakes are refused. The comparison takes constant time; lifespan events pass through.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self._app = app
        self._expected = token.encode()

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                scheme, _, credentials = bytes(value).partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), self._expected)
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" or self._authorized(scope):
            await self._app(scope, receive, send)
            return
        _log.info("serve_mcp.unauthorized", path=scope.get("path"))
        if scope["type"] == "websocket":
            # Closing before accepting makes the server answer the handshake with 403.
            await send({"type": "websocket.close", "code": WEBSOCKET_POLICY_VIOLATION})
            return
        response = JSONResponse(
            {"error": "unauthorized", "message": "send Authorization: Bearer <token>"},
            status_code=HTTP_UNAUTHORIZED,
            headers={"WWW-Authenticate": "Bearer"},
        )
        await response(scope, receive, send)


# -- the command ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HttpEndpoint:
    """Where ``--http`` serves: a host (name or address) and a TCP port."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> HttpEndpoint:
        """``HOST:PORT`` (IPv6 hosts in brackets: ``[::1]:8000``); `ValueError` with a clear message."""
        host, separator, port_text = text.strip().rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not separator or not host or not port_text.isdigit():
            raise ValueError(f"--http expects HOST:PORT (for example 127.0.0.1:8000), got {text!r}")
        port = int(port_text)
        if not MIN_PORT <= port <= MAX_PORT:
            raise ValueError(f"--http port must be between {MIN_PORT} and {MAX_PORT}, got {port}")
        return cls(host, port)

    @property
    def is_loopback(self) -> bool:
        """Whether only this machine can reach the address (``localhost``, 127.0.0.0/8, ``::1``)."""
        if self.host.casefold() == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{MCP_PATH}"


@dataclass(frozen=True, slots=True)
class ServeSettings:
    """Everything the command needs, checked. Tokens stay out of the repr."""

    coder_url: str
    coder_token: str = field(repr=False)
    readiness: ReadinessSettings
    log_level: LogLevel
    endpoint: HttpEndpoint | None = None
    bearer_token: str | None = field(default=None, repr=False)


def _configure_logging(level: LogLevel) -> None:
    # Stdout carries the protocol in stdio mode: every log line goes to stderr.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(level.value),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


class StartupError(Exception):
    """The server cannot start (its port is taken, the deployment or the token is wrong); the text says why."""


def listen(endpoint: HttpEndpoint) -> socket.socket:
    """A socket bound and listening on ``endpoint``, as uvicorn would open it, or `StartupError` saying why
    not ("address already in use"), so the failure is reported before the server says it is serving."""
    family = socket.AF_INET6 if ":" in endpoint.host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart may reuse the port at once
        listener.bind((endpoint.host, endpoint.port))
        listener.listen(LISTEN_BACKLOG)
    except OSError as exc:
        listener.close()
        reason = exc.strerror or errno.errorcode.get(exc.errno or 0) or type(exc).__name__
        if isinstance(exc, socket.gaierror):
            reason = "host not found"
        where = endpoint.url.removesuffix(MCP_PATH).removeprefix("http://")
        raise StartupError(f"cannot listen on {where}: {reason[:1].lower()}{reason[1:]}") from None
    return listener


async def serve(settings: ServeSettings) -> None:
    """Check the deployment and the token, then serve until stdin closes (stdio) or the process is
    interrupted (HTTP); the Coder client is closed after. Raises `StartupError` or `CoderError`, before
    anything is served, when the port is taken or the deployment cannot be used."""
    endpoint = settings.endpoint
    listener = listen(endpoint) if endpoint is not None else None
    try:
        async with CoderClient(settings.coder_url, settings.coder_token) as client:
            deployment = await check_deployment(client)
            server = build_server(WorkspaceLifecycle(client, settings.readiness), log_level=settings.log_level)
            where = "stdio" if endpoint is None else endpoint.url
            typer.echo(
                f"serve-mcp: serving MCP on {where} for {deployment.username} at {deployment.authority} "
                f"(Coder {deployment.version})",
                err=True,
            )
            if endpoint is None or listener is None:
                await server.run_stdio_async()
                return
            asgi: ASGIApp = server.streamable_http_app(streamable_http_path=MCP_PATH, host=endpoint.host)
            if settings.bearer_token:
                asgi = BearerTokenMiddleware(asgi, settings.bearer_token)
            config = uvicorn.Config(
                asgi,
                host=endpoint.host,
                port=endpoint.port,
                log_level=settings.log_level.value.lower(),
                access_log=False,
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
            )
            await uvicorn.Server(config).serve(sockets=[listener])
    finally:
        if listener is not None:
            listener.close()


def _fail(message: str) -> typer.Exit:
    typer.echo(f"serve-mcp: {message}", err=True)
    return typer.Exit(EXIT_FAILURE)


@app.command(COMMAND_NAME)
def serve_mcp(
    coder_url: Annotated[
        str | None,
        typer.Option("--coder-url", envvar=CODER_URL_ENV, callback=parse_coder_url, help=CODER_URL_HELP),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar=CODER_TOKEN_ENV, help="Coder session token.", show_default=False),
    ] = None,
    http: Annotated[
        str | None,
        typer.Option(
            "--http", metavar="HOST:PORT", help="Serve Streamable HTTP at http://HOST:PORT/mcp instead of stdio."
        ),
    ] = None,
    bearer_token: Annotated[
        str | None,
        typer.Option(
            "--bearer-token",
            envvar=BEARER_TOKEN_ENV,
            help="With --http: require 'Authorization: Bearer <token>'. Required unless HOST is loopback.",
            show_default=False,
        ),
    ] = None,
    poll_interval: Annotated[
        float, typer.Option(callback=positive_seconds, help="Seconds between polls of a build or an agent (> 0).")
    ] = _DEFAULT_READINESS.build_poll_interval,
    build_timeout: Annotated[
        float,
        typer.Option(callback=positive_seconds, help="Seconds a build may take before a tool gives up on it (> 0)."),
    ] = _DEFAULT_READINESS.build_timeout,
    log_level: Annotated[LogLevel, typer.Option(case_sensitive=False, help="Logs go to stderr.")] = LogLevel.WARNING,
) -> None:
    """Serve the workspace lifecycle tools as an MCP server (stdio by default).

    Checks the deployment and the token once before serving. Exit status: 0 stopped; 1 cannot start (the
    port is taken, the deployment is unreachable or not Coder, the token is rejected), the reason printed;
    2 usage error; 130 interrupted.
    """
    if not coder_url:
        raise typer.BadParameter(f"no Coder URL: pass --coder-url or set {CODER_URL_ENV}", param_hint="'--coder-url'")
    if not token:
        raise typer.BadParameter(
            f"no Coder session token: pass --token or set {CODER_TOKEN_ENV}", param_hint="'--token'"
        )
    endpoint = None
    if http is not None:
        try:
            endpoint = HttpEndpoint.parse(http)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="'--http'") from None
        if not endpoint.is_loopback and not bearer_token:
            raise typer.BadParameter(
                f"refusing to serve on {endpoint.host}, which is not a loopback address, without a bearer token: "
                f"pass --bearer-token or set {BEARER_TOKEN_ENV}",
                param_hint="'--bearer-token'",
            )
    settings = ServeSettings(
        coder_url=coder_url,
        coder_token=token,
        readiness=ReadinessSettings(
            build_poll_interval=poll_interval,
            agent_probe_interval=poll_interval,
            lifecycle_poll_interval=poll_interval,
            build_timeout=build_timeout,
        ),
        log_level=log_level,
        endpoint=endpoint,
        bearer_token=bearer_token or None,
    )
    _configure_logging(log_level)
    try:
        # uvicorn needs asyncio; stdio would run on either backend, one loop keeps the two modes alike.
        anyio.run(serve, settings, backend="asyncio")
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except (StartupError, CoderError) as exc:
        raise _fail(str(exc)) from None


def _run_as_module() -> None:
    """``python -m chat_mcp_primer.cli.serve_mcp [OPTIONS]``: this command, whether or not others are registered."""
    args = sys.argv[1:]
    if isinstance(typer.main.get_command(app), typer.core.TyperGroup):
        args = [COMMAND_NAME, *args]
    app(args=args, prog_name=f"{SERVER_NAME} {COMMAND_NAME}")


if __name__ == "__main__":
    _run_as_module()
