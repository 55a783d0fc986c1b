"""What a test configures: templates, their versions, the agents a version runs and the apps those agents serve.

All of it is frozen data. Timings are seconds on the fake's clock, measured from the moment named in each
field's comment, so a `MockClock` moves a workspace through its whole life exactly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from chat_mcp_primer.testing._mcp_server import ToolDef

# Defaults are small but non-zero so every intermediate state (pending, starting, connecting, ...) is
# observable by a test that reads between clock steps, and a whole start settles in well under a minute.

# A provisioner usually picks a job up within a second on an idle deployment.
DEFAULT_QUEUE_SECONDS = 1.0
# A short Terraform apply for a start; long enough that "starting" can be read before it ends.
DEFAULT_BUILD_SECONDS = 5.0
# Stopping tears down less than starting creates.
DEFAULT_STOP_SECONDS = 2.0
# The provisioner acknowledges a cancel of a running job after about a second.
DEFAULT_CANCEL_SECONDS = 1.0
# The agent binary dials coderd a couple of seconds after its container starts.
DEFAULT_CONNECT_SECONDS = 2.0
# Startup scripts run between "starting" and "ready".
DEFAULT_STARTUP_SECONDS = 3.0
# Coder's default agent connection timeout (the `coder_agent` resource's `connection_timeout`).
DEFAULT_CONNECTION_TIMEOUT_SECONDS = 120
# A workspace MCP server needs a moment after startup scripts finish before it answers.
DEFAULT_MCP_COLD_START_SECONDS = 4.0
# The port an MCP server listens on inside the workspace; only shown in the app's `url`.
DEFAULT_MCP_PORT = 3000
# Coder's default app health check: every 5 s, unhealthy after 6 failures.
HEALTHCHECK_INTERVAL_SECONDS = 5
HEALTHCHECK_THRESHOLD = 6

# Coder's rule for app slugs (`coder_app.slug`): lower-case words joined by single hyphens.
_APP_SLUG = re.compile(r"^[a-z0-9](-?[a-z0-9])*$")
# Coder's rules for names: agents (provisioner's agent name check; no dots, they separate agent from workspace
# in app URLs), templates (`codersdk.NameValid`) and versions (`codersdk.TemplateVersionNameValid`).
_AGENT_NAME = re.compile(r"^[a-zA-Z0-9](-?[a-zA-Z0-9])*$")
_TEMPLATE_NAME = re.compile(r"^[a-zA-Z0-9]+(?:-[a-zA-Z0-9]+)*$")
_VERSION_NAME = re.compile(r"^[a-zA-Z0-9]+(?:[_.-][a-zA-Z0-9]+)*$")

StartupOutcome = Literal["ready", "start_error", "start_timeout"]
ParameterType = Literal["string", "number", "bool", "list(string)"]
SharingLevel = Literal["owner", "authenticated", "organization", "public"]


def is_mcp_slug(slug: str) -> bool:
    """The rule a client uses to recognise an MCP server among an agent's apps: ``mcp`` or ``*-mcp``."""
    return slug == "mcp" or slug.endswith("-mcp")


def _check_seconds(owner: str, **values: float | None) -> None:
    for name, value in values.items():
        if value is not None and (math.isnan(value) or value < 0):
            raise ValueError(f"{owner}.{name} must be >= 0 (math.inf for never), got {value!r}")


@dataclass(frozen=True, slots=True)
class FakeMcpServer:
    """An MCP server an agent runs, exposed as a workspace app and reachable through the path-based app proxy.

    It is up ``cold_start_seconds`` after its agent's lifecycle reaches ``ready`` (``math.inf``: never); until
    then the proxy answers 502. Like a Coder app, it has no healthcheck unless ``healthcheck`` says so: its
    ``health`` is then ``disabled`` throughout and no ``app_health`` change is ever pushed (the common
    case on real templates); with one, it is ``initializing`` until the server is up, then ``healthy``.
    Once up, the proxy serves a real MCP server over Streamable HTTP at ``.../apps/{slug}/mcp`` that lists
    ``tools`` and answers every call with a text naming the tool and its arguments. ``slug`` must be
    ``mcp`` or end in ``-mcp``.

    With ``upstream`` (a base URL such as ``http://127.0.0.1:8931``), the proxy forwards to that real server,
    typically another process, instead of serving ``tools`` in-process; while nothing listens there it
    answers 502, as Coder does for an app that is not up yet.

    With ``subdomain`` it is a subdomain app (``subdomain = true`` on the ``coder_app``): served at
    ``{slug}--{agent}--{workspace}--{owner}`` under the deployment's wildcard access URL, at ``/mcp``, and
    not under the path-based proxy; on a deployment without a wildcard it cannot be reached at all.
    """

    slug: str = "mcp"
    tools: Sequence[ToolDef] = ()
    cold_start_seconds: float = DEFAULT_MCP_COLD_START_SECONDS
    display_name: str = ""
    port: int = DEFAULT_MCP_PORT
    upstream: str | None = None
    healthcheck: bool = False
    subdomain: bool = False

    def __post_init__(self) -> None:
        if not _APP_SLUG.match(self.slug) or not is_mcp_slug(self.slug):
            raise ValueError(f"MCP server slug {self.slug!r} must be 'mcp' or end in '-mcp' (lower-case, hyphens)")
        _check_seconds("FakeMcpServer", cold_start_seconds=self.cold_start_seconds)
        object.__setattr__(self, "tools", tuple(self.tools))


@dataclass(frozen=True, slots=True)
class FakeApp:
    """A non-MCP workspace app (an IDE, a web UI). The proxy has nothing to serve for it and answers 502.

    With ``healthcheck`` its health goes ``initializing`` -> ``healthy`` when the agent is ready; without,
    it is ``disabled``, as in Coder. ``subdomain`` as for `FakeMcpServer`.
    """

    slug: str
    display_name: str = ""
    url: str = "http://localhost:8080"
    healthcheck: bool = False
    hidden: bool = False
    external: bool = False
    sharing_level: SharingLevel = "owner"
    subdomain: bool = False

    def __post_init__(self) -> None:
        if not _APP_SLUG.match(self.slug):
            raise ValueError(f"app slug {self.slug!r} must be lower-case words joined by single hyphens")


@dataclass(frozen=True, slots=True)
class FakeAgent:
    """A workspace agent a start build creates (with a new id every start build).

    Timeline, from the moment the build's job succeeds: ``connecting`` for ``connect_seconds`` (``math.inf``
    or ``never_connects``: until ``timeout`` once ``connection_timeout_seconds`` have passed since it
    appeared), then ``connected`` with lifecycle ``starting``; ``startup_seconds`` later the lifecycle
    reaches ``startup_outcome``. A ``start_timeout`` agent becomes ``ready`` after a further
    ``ready_after_timeout_seconds`` when that is set. ``parent`` names another agent of the same version,
    making this one a sub-agent (a dev container) with a ``parent_id``.
    """

    name: str = "main"
    parent: str | None = None
    connect_seconds: float = DEFAULT_CONNECT_SECONDS
    never_connects: bool = False
    connection_timeout_seconds: int = DEFAULT_CONNECTION_TIMEOUT_SECONDS
    startup_seconds: float = DEFAULT_STARTUP_SECONDS
    startup_outcome: StartupOutcome = "ready"
    ready_after_timeout_seconds: float | None = None
    mcp_servers: Sequence[FakeMcpServer] = ()
    apps: Sequence[FakeApp] = ()
    operating_system: str = "linux"
    architecture: str = "amd64"
    directory: str = "/home/coder"

    def __post_init__(self) -> None:
        if not _AGENT_NAME.match(self.name):
            raise ValueError(f"agent name {self.name!r} must be letters and digits joined by single hyphens")
        _check_seconds(
            "FakeAgent",
            connect_seconds=self.connect_seconds,
            startup_seconds=self.startup_seconds,
            ready_after_timeout_seconds=self.ready_after_timeout_seconds,
        )
        object.__setattr__(self, "mcp_servers", tuple(self.mcp_servers))
        object.__setattr__(self, "apps", tuple(self.apps))
        slugs = [server.slug for server in self.mcp_servers] + [app.slug for app in self.apps]
        if len(set(slugs)) != len(slugs):
            raise ValueError(f"agent {self.name!r} has duplicate app slugs: {slugs}")


@dataclass(frozen=True, slots=True)
class FakeParameter:
    """A rich parameter of a template version. Without a ``default_value`` it is required."""

    name: str
    type: ParameterType = "string"
    default_value: str | None = None
    description: str = ""
    display_name: str = ""
    mutable: bool = True
    options: Sequence[str] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", tuple(self.options))

    @property
    def required(self) -> bool:
        return self.default_value is None


@dataclass(frozen=True, slots=True)
class FakePreset:
    """A named set of parameter values of a template version (``GET .../presets``)."""

    name: str
    parameters: Mapping[str, str] = field(default_factory=dict)
    default: bool = False
    description: str = ""


@dataclass(frozen=True, slots=True)
class FakeVersion:
    """One template version: the agents its start builds create and how long its builds take.

    A build's job is ``pending`` for ``queue_seconds`` after it is created, then ``running`` for
    ``build_seconds`` (start) or ``stop_seconds`` (stop, delete), then done; a cancel of a running job
    takes ``cancel_seconds``. The version's own import job runs for ``import_seconds`` after the version
    is added (builds get 406 meanwhile) and then succeeds, or fails with ``import_error``.
    """

    name: str
    agents: Sequence[FakeAgent] = (FakeAgent(),)
    queue_seconds: float = DEFAULT_QUEUE_SECONDS
    build_seconds: float = DEFAULT_BUILD_SECONDS
    stop_seconds: float = DEFAULT_STOP_SECONDS
    cancel_seconds: float = DEFAULT_CANCEL_SECONDS
    import_seconds: float = 0.0
    import_error: str | None = None
    parameters: Sequence[FakeParameter] = ()
    presets: Sequence[FakePreset] = ()
    message: str = ""
    archived: bool = False

    def __post_init__(self) -> None:
        if not _VERSION_NAME.match(self.name):
            raise ValueError(f"version name {self.name!r} must be letters and digits joined by single '-', '_' or '.'")
        _check_seconds(
            "FakeVersion",
            queue_seconds=self.queue_seconds,
            build_seconds=self.build_seconds,
            stop_seconds=self.stop_seconds,
            cancel_seconds=self.cancel_seconds,
            import_seconds=self.import_seconds,
        )
        for name in ("agents", "parameters", "presets"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        names = [agent.name for agent in self.agents]
        if len(set(names)) != len(names):
            raise ValueError(f"version {self.name!r} has duplicate agent names: {names}")
        for agent in self.agents:
            if agent.parent is not None and (agent.parent not in names or agent.parent == agent.name):
                raise ValueError(f"agent {agent.name!r} names an unknown parent {agent.parent!r}")

    @property
    def imports_at_once(self) -> bool:
        """Whether the version is buildable the moment it is added."""
        return self.import_seconds == 0 and self.import_error is None


@dataclass(frozen=True, slots=True)
class FakeTemplate:
    """A template and its versions, oldest first.

    ``active_version`` names the active one; by default the newest version that imports at once.
    A non-empty ``deprecation_message`` makes the template ``deprecated`` (new workspaces get 400).
    """

    name: str
    versions: Sequence[FakeVersion]
    active_version: str | None = None
    display_name: str = ""
    description: str = ""
    icon: str = ""
    require_active_version: bool = False
    deprecation_message: str = ""
    allow_user_cancel_workspace_jobs: bool = True

    def __post_init__(self) -> None:
        if not _TEMPLATE_NAME.match(self.name):
            raise ValueError(f"template name {self.name!r} must be letters and digits joined by single hyphens")
        object.__setattr__(self, "versions", tuple(self.versions))
        names = [version.name for version in self.versions]
        if not names:
            raise ValueError(f"template {self.name!r} needs at least one version")
        if len(set(names)) != len(names):
            raise ValueError(f"template {self.name!r} has duplicate version names: {names}")
        active = self.initial_active_version
        if not active.imports_at_once:
            raise ValueError(f"the active version {active.name!r} of {self.name!r} must import at once")

    @property
    def initial_active_version(self) -> FakeVersion:
        if self.active_version is not None:
            for version in self.versions:
                if version.name == self.active_version:
                    return version
            raise ValueError(f"template {self.name!r} has no version {self.active_version!r}")
        for version in reversed(self.versions):
            if version.imports_at_once:
                return version
        raise ValueError(f"template {self.name!r} has no version that imports at once to make active")
