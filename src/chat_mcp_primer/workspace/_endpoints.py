from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str:
    """The origin of ``url``, ``scheme://host:port`` with the default port made explicit and the host in
    lower case, so two spellings of one origin compare equal. Userinfo, path and query are left out."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:  # a port that is not a number: no origin anything can match
        return f"{scheme}://invalid"
    port = port or _DEFAULT_PORTS.get(scheme)
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


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
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    health: EndpointHealth = EndpointHealth.UNKNOWN
    # TLS certificates are verified unless the backend was explicitly told not to (a deployment with a
    # self-signed certificate); the endpoint follows its backend's choice.
    verify_tls: bool = True
    # The only origin (``scheme://host:port``) this endpoint may be reached on. A backend whose endpoints
    # carry its deployment's credentials sets it to the deployment's own origin: an endpoint URL anywhere
    # else is refused without being dialled, so the credentials never leave the deployment. None: no
    # constraint (endpoints an operator configured by hand).
    origin: str | None = None
    # Where the workspace side may publish a discovery report for this endpoint (the gateway's
    # ``GET /discovery``, beside its MCP endpoint), on the same origin; None: look for none. An endpoint
    # whose report URL answers with anything but a report is treated as one without, at the cost of one
    # request per agent.
    report_url: str | None = None

    def __post_init__(self) -> None:
        # A copy nobody can change, so an endpoint (and the credential it carries) is immutable all the way down.
        object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))

    def connects_like(self, other: McpEndpoint) -> bool:
        """Whether a session opened for this endpoint serves ``other``: the same server, URL, headers, TLS
        verification and origin. Health is not part of it: an app turning healthy is the same server."""
        return replace(self, health=other.health) == other

    @property
    def off_origin(self) -> bool:
        """True when the URL is not on the endpoint's required `origin`."""
        return self.origin is not None and origin_of(self.url) != origin_of(self.origin)


@dataclass(frozen=True, slots=True)
class AgentMcp:
    """The agent a workspace currently runs and the MCP endpoints it exposes.

    An empty ``endpoints`` means the workspace has no MCP server at all: discovery is "confirmed empty"
    and nothing retries.
    """

    workspace_id: str
    agent_id: str
    endpoints: tuple[McpEndpoint, ...] = ()
