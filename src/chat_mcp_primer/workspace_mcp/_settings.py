from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

McpMode = Literal["auto", "legacy"]


@dataclass(frozen=True, slots=True)
class PrimerSettings:
    """How discovery of a workspace's MCP tools waits, retries and gives up.

    The defaults reproduce Coder's chat daemon (see the README's comparison); every field is a knob a
    test or an operator may turn, never a module constant.
    """

    # Budget for starting new attempts after a workspace became ready. Templates without MCP servers
    # must not add more than this to a turn, and 30 s covers a typical cold start of an MCP server.
    max_wait: float = 30.0
    # Pause between attempts: short enough that tools appear within a step or two of being ready,
    # long enough not to hammer a server that is still starting.
    retry_interval: float = 2.0
    # One listing (all pages). Longer than a workspace agent's own 30 s MCP connect timeout, so a cold
    # server's first connect can settle instead of being cut off just before it answers.
    discovery_timeout: float = 35.0
    # Connecting and negotiating one MCP session; a cold agent may take most of this to accept.
    dial_timeout: float = 30.0
    # A workspace tool may run a build or a test suite; five minutes bounds a hung server without
    # cutting real work short.
    call_timeout: float = 300.0
    # When a turn ends its sessions are closed politely (the server hears that the session is over);
    # a server that does not answer within this grace period is cut off, so it cannot hold up the turn.
    close_grace: float = 1.0
    # A paginated listing longer than this is treated as a server fault (likely a cursor bug).
    max_list_pages: int = 100
    # Tool descriptions are sent to the model on every step; longer ones are truncated.
    max_description_chars: int = 4_096
    # An input schema larger than this (serialised) is refused: it would crowd the model's context.
    max_schema_bytes: int = 65_536
    # How MCP sessions negotiate: "auto" probes the 2026 protocol first, "legacy" goes straight to
    # the initialize handshake (saves the probe against old servers).
    mcp_mode: McpMode = "auto"

    def __post_init__(self) -> None:
        for name in ("max_wait", "retry_interval", "discovery_timeout", "dial_timeout", "call_timeout", "close_grace"):
            if getattr(self, name) < 0:
                raise ValueError(f"PrimerSettings.{name} must not be negative")
        if self.retry_interval == 0:
            raise ValueError("PrimerSettings.retry_interval must be positive")
        if self.max_list_pages < 1:
            raise ValueError("PrimerSettings.max_list_pages must be at least 1")
