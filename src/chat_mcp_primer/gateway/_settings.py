"""Every number the gateway works by, each with the reason for its value."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

# The gateway's port when ``--listen`` names none: a fixed one, so a template's ``coder_app`` can point at
# it without the script and the app agreeing on anything else. Unassigned by IANA, and away from the ports
# workspace tools usually take (3000, 8000, 8080, code-server's 13337).
DEFAULT_PORT = 7347
# Loopback only: the app proxy reaches the gateway through the workspace agent, and nothing else should.
DEFAULT_HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """How the gateway connects, bounds and restarts the servers of its ``.mcp.json`` files.

    Every duration is in seconds on the gateway's `Clock`.
    """

    # Coder's agent gives a server 30 s to connect; the gateway matches it, so a server slow to start
    # (``npx`` fetching a package) behaves the same through either.
    connect_timeout: float = 30.0
    # Coder's agent gives a tool call 60 s; matched for the same reason.
    call_timeout: float = 60.0
    # A server's whole listing, every page: as long as a connect, since a cold server answers its first
    # listing as slowly as it answers the handshake.
    list_timeout: float = 30.0
    # Tools kept per server: far above what real servers list (tens), low enough that a broken server
    # cannot make every MCP client of the workspace hold a listing of millions.
    max_tools_per_server: int = 500
    # Pages walked per listing: a server that hands back cursors forever is cut off here.
    max_list_pages: int = 50
    # A failure's reason in the discovery report: one line a model can quote to the user, never a dump.
    max_reason_chars: int = 200
    # Restart backoff of a server that crashed or failed to start: the first pause, its growth, its cap.
    # One second is long enough that a crash loop cannot eat a core, short enough that a server killed by
    # mistake is back before anyone notices; the cap keeps a server that recovers later reachable within
    # half a minute.
    restart_initial: float = 1.0
    restart_factor: float = 2.0
    restart_cap: float = 30.0
    # A server that stayed up this long restarts at `restart_initial` again after its next crash.
    restart_reset_after: float = 60.0
    # How often the config files are looked at (stat: inode, size, mtime). Coder's agent reacts to a change
    # after a 250 ms debounce; one second is as quick for a person editing a file and costs four stat calls
    # a second less.
    config_poll_seconds: float = 1.0
    # The longest a read of /discovery is held for a change (`Prefer: wait=N` with `If-None-Match`): the
    # runtime asks for 25 s; a minute bounds a client that asks for more.
    max_report_wait_seconds: float = 60.0
    # Seconds uvicorn gives requests in flight on shutdown before it drops them: a tool call cut short is
    # better than a gateway that outlives its workspace's stop.
    shutdown_grace_seconds: float = 5.0

    def __post_init__(self) -> None:
        for setting in fields(self):
            value = getattr(self, setting.name)
            if isinstance(value, float) and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{setting.name} must be a positive, finite number of seconds, got {value!r}")
            if isinstance(value, int) and value < 1:
                raise ValueError(f"{setting.name} must be at least 1, got {value!r}")
        if self.restart_factor < 1:
            raise ValueError(f"restart_factor must be at least 1, got {self.restart_factor!r}")

    def restart_delay(self, previous: float | None) -> float:
        """The pause before the next restart, given the previous one (None: this is the first)."""
        if previous is None:
            return self.restart_initial
        return min(previous * self.restart_factor, self.restart_cap)
