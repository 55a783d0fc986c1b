"""``chat-mcp-primer serve-mcp``: the workspace lifecycle tools as an MCP server, over stdio or Streamable HTTP.

The chat's lifecycle tools act on the chat's own workspace; these act on any workspace of the token's
user, named by id or by name. Both are adapters over the same `CoderLifecycle`, described by the same
texts and rendered by the same function, so they answer with the same result keys, as JSON objects;
failures are results with ``isError`` set, never crashes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Literal

import anyio
import structlog
import typer
import uvicorn
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult, TextContent
from pydantic import Field
from starlette.types import ASGIApp

from chat_mcp_primer._errors import ToolArgumentError
from chat_mcp_primer.cli._app import EXIT_FAILURE, EXIT_INTERRUPTED, LogLevel, app, configure_logging, run_as_module
from chat_mcp_primer.cli._http_transport import (
    MCP_PATH,
    BearerTokenMiddleware,
    HttpEndpoint,
    StartupError,
    listen,
)
from chat_mcp_primer.cli._long_calls import LongCall
from chat_mcp_primer.cli._options import CODER_URL_HELP, parse_coder_url, positive_seconds
from chat_mcp_primer.tools import (
    NAMED,
    Result,
    describe,
    parameter_value,
    render_in_progress,
    render_outcome,
    render_status,
    render_templates,
)
from chat_mcp_primer.tools import descriptions as text
from chat_mcp_primer.workspace.coder import (
    CoderClient,
    CoderError,
    CoderLifecycle,
    CoderNotFoundError,
    CreateRequest,
    KeyedLocks,
    LifecycleObserver,
    LifecycleOutcome,
    Operation,
    ReadinessSettings,
    Workspace,
    check_deployment,
)

COMMAND_NAME = "serve-mcp"
SERVER_NAME = "chat-mcp-primer"
CODER_URL_ENV = "CODER_URL"
CODER_TOKEN_ENV = "CODER_SESSION_TOKEN"
BEARER_TOKEN_ENV = "CHAT_MCP_PRIMER_BEARER_TOKEN"
# Seconds uvicorn gives open requests (a long create_workspace) after Ctrl-C before it drops them.
GRACEFUL_SHUTDOWN_SECONDS = 5

_DEFAULT_READINESS = ReadinessSettings()
_log = structlog.get_logger("chat_mcp_primer.serve_mcp")

SERVER_INSTRUCTIONS = (
    "Workspace lifecycle tools for one Coder deployment, acting as the user whose session token the server "
    "holds. A `workspace` argument is a workspace id or name (names compare case-insensitively). Tools that "
    "build wait for the build and for the workspace agent to be ready before they answer, sending progress "
    "notifications meanwhile; with `wait: false` they answer once the build is posted, and workspace_status "
    "follows it."
)

WorkspaceRef = Annotated[str, Field(description=text.WORKSPACE_REFERENCE)]
Wait = Annotated[bool, Field(description=text.WAIT)]

# The shared levels in the SDK's spelling (MCPServer configures the standard library's logging with it).
_SDK_LOG_LEVELS: dict[LogLevel, Literal["DEBUG", "INFO", "WARNING", "ERROR"]] = {
    LogLevel.DEBUG: "DEBUG",
    LogLevel.INFO: "INFO",
    LogLevel.WARNING: "WARNING",
    LogLevel.ERROR: "ERROR",
}


# -- the operations ---------------------------------------------------------------------------------


def _looks_like_id(reference: str) -> bool:
    # Only the canonical hyphenated form (36 characters) counts: Coder names are at most 32 characters, so it can
    # never be a name, while 32 bare hex digits, which `uuid.UUID` would also accept, can.
    try:
        return str(uuid.UUID(reference)) == reference.lower()
    except ValueError:
        return False


def _lock_key(name: str) -> str:
    # By name, not id: a create holds the name's lock before Coder has given the workspace an id, and the
    # token's user cannot have two workspaces of one name (names compare case-insensitively).
    return name.casefold()


class WorkspaceLifecycle:
    """The lifecycle tools' operations on one Coder deployment, for workspaces named by id or name.

    Each operation returns the result object the chat's tool of the same name returns (see
    `chat_mcp_primer.tools.render_outcome`). Operations on one workspace run one at a time, in the order
    they acquire its lock (`locks`, kept only while in use); the lifecycle re-reads the workspace once the
    lock is held. A `CoderError` or `ToolArgumentError` propagates; `tool_result` turns it into an error result.
    """

    def __init__(self, client: CoderClient, readiness: ReadinessSettings | None = None) -> None:
        self.client = client
        self.lifecycle = CoderLifecycle(client, readiness)
        self.locks = KeyedLocks()

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

    async def _on(self, reference: str, operation: Callable[[str], Awaitable[LifecycleOutcome]]) -> Result:
        workspace = await self.find(reference)
        async with self.locks.hold(_lock_key(workspace.name)):
            return render_outcome(await operation(workspace.id), NAMED)

    async def list_templates(self) -> Result:
        return render_templates(await self.client.templates())

    async def create_workspace(self, request: CreateRequest, observer: LifecycleObserver | None = None) -> Result:
        async with self.locks.hold(_lock_key(request.name)):
            return render_outcome(await self.lifecycle.create(request, observer=observer), NAMED)

    async def start_workspace(self, reference: str, observer: LifecycleObserver | None = None) -> Result:
        return await self._on(reference, lambda workspace_id: self.lifecycle.start(workspace_id, observer=observer))

    async def stop_workspace(self, reference: str) -> Result:
        return await self._on(reference, self.lifecycle.stop)

    async def restart_workspace(self, reference: str, observer: LifecycleObserver | None = None) -> Result:
        return await self._on(reference, lambda workspace_id: self.lifecycle.restart(workspace_id, observer=observer))

    async def update_workspace(
        self, reference: str, template_version_id: str | None, observer: LifecycleObserver | None = None
    ) -> Result:
        return await self._on(
            reference, lambda workspace_id: self.lifecycle.update(workspace_id, template_version_id, observer=observer)
        )

    async def workspace_status(self, reference: str) -> Result:
        """The workspace as it is now; never waits and never builds."""
        return render_status(await self.find(reference))


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


async def long_call_result(
    operation: Operation,
    context: Context,
    lifecycle: WorkspaceLifecycle,
    wait: bool,
    run: Callable[[LongCall], Awaitable[Result]],
) -> CallToolResult:
    """`tool_result` for a tool that builds (``{operation}_workspace``): progress notifications while it
    waits (see `LongCall`); with ``wait`` false, the answer as soon as the build that brings the workspace
    up is posted or joined."""

    async def send(progress: float, message: str) -> None:
        await context.report_progress(progress, message=message)  # a no-op unless the client gave a token

    tool = f"{operation.value}_workspace"
    call = LongCall(operation, lifecycle.lifecycle.clock, send, return_early=not wait)

    async def answer() -> Result:
        result = await call.keep_alive(tool, run)
        return result if result is not None else render_in_progress(call.early_outcome(), NAMED)

    return await tool_result(tool, answer())


def _parameter_values(parameters: dict[str, str | int | float | bool] | None) -> dict[str, str]:
    return {name: parameter_value(value) for name, value in (parameters or {}).items()}


def build_server(lifecycle: WorkspaceLifecycle, *, log_level: LogLevel = LogLevel.WARNING) -> MCPServer:
    """An `MCPServer` serving the seven workspace tools over ``lifecycle``."""
    server: MCPServer = MCPServer(SERVER_NAME, instructions=SERVER_INSTRUCTIONS, log_level=_SDK_LOG_LEVELS[log_level])

    async def list_templates() -> CallToolResult:
        return await tool_result("list_templates", lifecycle.list_templates())

    async def create_workspace(
        context: Context,
        template_id: Annotated[str, Field(description=text.TEMPLATE_ID)],
        name: Annotated[str, Field(description=text.WORKSPACE_NAME)],
        parameters: Annotated[dict[str, str | int | float | bool] | None, Field(description=text.PARAMETERS)] = None,
        preset_id: Annotated[str | None, Field(description=text.PRESET_ID)] = None,
        wait: Wait = True,
    ) -> CallToolResult:
        request = CreateRequest(name, template_id, _parameter_values(parameters), preset_id or None)
        return await long_call_result(
            Operation.CREATE, context, lifecycle, wait, lambda observer: lifecycle.create_workspace(request, observer)
        )

    async def start_workspace(context: Context, workspace: WorkspaceRef, wait: Wait = True) -> CallToolResult:
        return await long_call_result(
            Operation.START, context, lifecycle, wait, lambda observer: lifecycle.start_workspace(workspace, observer)
        )

    async def stop_workspace(workspace: WorkspaceRef) -> CallToolResult:
        return await tool_result("stop_workspace", lifecycle.stop_workspace(workspace))

    async def restart_workspace(context: Context, workspace: WorkspaceRef, wait: Wait = True) -> CallToolResult:
        return await long_call_result(
            Operation.RESTART,
            context,
            lifecycle,
            wait,
            lambda observer: lifecycle.restart_workspace(workspace, observer),
        )

    async def update_workspace(
        context: Context,
        workspace: WorkspaceRef,
        template_version_id: Annotated[str | None, Field(description=text.TEMPLATE_VERSION_ID)] = None,
        wait: Wait = True,
    ) -> CallToolResult:
        return await long_call_result(
            Operation.UPDATE,
            context,
            lifecycle,
            wait,
            lambda observer: lifecycle.update_workspace(workspace, template_version_id or None, observer),
        )

    async def workspace_status(workspace: WorkspaceRef) -> CallToolResult:
        return await tool_result("workspace_status", lifecycle.workspace_status(workspace))

    tools: list[Callable[..., Awaitable[CallToolResult]]] = [
        list_templates,
        create_workspace,
        start_workspace,
        stop_workspace,
        restart_workspace,
        update_workspace,
        workspace_status,
    ]
    for function in tools:
        server.add_tool(function, name=function.__name__, description=describe(function.__name__, NAMED))
    return server


@dataclass(frozen=True, slots=True)
class ServeSettings:
    """Everything the command needs, checked. Tokens stay out of the repr."""

    coder_url: str
    coder_token: str = field(repr=False)
    readiness: ReadinessSettings
    log_level: LogLevel
    endpoint: HttpEndpoint | None = None
    bearer_token: str | None = field(default=None, repr=False)


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
                log_level=settings.log_level.value,
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
    log_level: Annotated[
        LogLevel, typer.Option("--log-level", case_sensitive=False, help="Logs go to stderr.")
    ] = LogLevel.WARNING,
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
    configure_logging(log_level)
    try:
        # uvicorn needs asyncio; stdio would run on either backend, one loop keeps the two modes alike.
        anyio.run(serve, settings, backend="asyncio")
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except (StartupError, CoderError) as exc:
        raise _fail(str(exc)) from None


if __name__ == "__main__":
    run_as_module(COMMAND_NAME)
