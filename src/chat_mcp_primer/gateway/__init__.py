"""The workspace side: ``chat-mcp-primer gateway`` serves a workspace's ``.mcp.json`` servers on one port.

It reads the files Coder's own agent reads (`default_config_paths`), in the same format and precedence, runs
the stdio servers as child processes and connects the http and sse ones, and serves all their tools on one
Streamable HTTP endpoint (``/mcp``) under ``server__tool`` names, as Coder's agent names them, beside a
discovery report (``GET /discovery``): see `DiscoveryReport`.

One endpoint rather than a path per server: a client holds one session and one listing for the whole
workspace, the model sees the names Coder's own chat gives it, and the one report describes every server.

Drive it from Python as the command does::

    async with Gateway(default_config_paths()) as gateway:
        await serve_http(gateway, listener, stop)
"""

from chat_mcp_primer.gateway._config import (
    CONFIG_FILE_NAME,
    ConfigFileError,
    GatewayConfig,
    InvalidEntry,
    ServerConfig,
    Transport,
    default_config_paths,
    load_config,
)
from chat_mcp_primer.gateway._gateway import Gateway, serve_http
from chat_mcp_primer.gateway._report import DiscoveryReport, Phase, ServerOutcome, Status
from chat_mcp_primer.gateway._server import DISCOVERY_PATH, MCP_PATH
from chat_mcp_primer.gateway._settings import DEFAULT_HOST, DEFAULT_PORT, GatewaySettings
from chat_mcp_primer.gateway._table import TOOL_SEPARATOR

__all__ = [
    "CONFIG_FILE_NAME",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DISCOVERY_PATH",
    "MCP_PATH",
    "TOOL_SEPARATOR",
    "ConfigFileError",
    "DiscoveryReport",
    "Gateway",
    "GatewayConfig",
    "GatewaySettings",
    "InvalidEntry",
    "Phase",
    "ServerConfig",
    "ServerOutcome",
    "Status",
    "Transport",
    "default_config_paths",
    "load_config",
    "serve_http",
]
