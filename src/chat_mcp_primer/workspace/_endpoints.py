from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class EndpointHealth(StrEnum):
    """A readiness hint for an endpoint, as a backend knows it (Coder reports it per workspace app)."""

    UNKNOWN = "unknown"
    INITIALIZING = "initializing"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True, slots=True)
class McpEndpoint:
    """One MCP server inside a workspace, and how to reach it over Streamable HTTP.

    ``server`` is the name its tools are prefixed with (``server__tool``). ``headers`` usually carry a
    credential, so they are left out of ``repr`` and never logged.
    """

    server: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    health: EndpointHealth = EndpointHealth.UNKNOWN
    # TLS certificates are verified unless the backend was explicitly told not to (a deployment with a
    # self-signed certificate); the endpoint follows its backend's choice.
    verify_tls: bool = True


@dataclass(frozen=True, slots=True)
class AgentMcp:
    """The agent a workspace currently runs and the MCP endpoints it exposes.

    An empty ``endpoints`` means the workspace has no MCP server at all: discovery is "confirmed empty"
    and nothing retries.
    """

    workspace_id: str
    agent_id: str
    endpoints: tuple[McpEndpoint, ...] = ()
