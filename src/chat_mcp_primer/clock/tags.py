"""The tags of every wait the library makes, in one place: a test clock traps or skips a wait by them.

``MockClock.trap(*tags.PRIMER_RETRY)`` catches the primer's next pause; a real clock ignores tags.
"""

from __future__ import annotations

from typing import Final

Tags = tuple[str, ...]

# Added to the tags of every timeout's timer, so a test clock can tell a deadline that only cuts a wait
# short from one that drives the schedule (`MockClock.autojump` never jumps to a timeout).
TIMEOUT: Final = "timeout"

# The test kit's: the deadline of `EventRecorder.wait_for` (a single tag, like TIMEOUT, and never TIMEOUT,
# so an autojumping MockClock reaches it like any other deadline).
EVENT_RECORDER_WAIT: Final = "event_recorder.wait_for"

# The primer's pause between discovery attempts.
PRIMER_RETRY: Final[Tags] = ("primer", "retry")
# The connection probe: its pause between knocks on a refused endpoint, and one knock's timeout.
PRIMER_PROBE: Final[Tags] = ("primer", "probe")
# A held step's bound (`PrimerSettings.prepare_wait`), kept by one deadline task for every held step.
PREPARE_WAIT: Final[Tags] = ("prepare", "wait")
# The pause of the poll that looks for an agent's tools while steps are held for its primers.
PREPARE_POLL: Final[Tags] = ("prepare", "poll")

# Dialling one MCP session (`SessionSettings.dial_timeout`).
MCP_DIAL: Final[Tags] = ("workspace-mcp", "dial")
# A handshake's time in its place among the concurrent ones (`SessionSettings.dial_slot_seconds`).
MCP_DIAL_SLOT: Final[Tags] = ("workspace-mcp", "dial-slot")
# Closing sessions politely before they are cut off (`SessionSettings.close_grace`).
MCP_CLOSE: Final[Tags] = ("workspace-mcp", "close")
# One server's whole listing (`ListingLimits.discovery_timeout`).
MCP_LIST: Final[Tags] = ("workspace-mcp", "list")
# Reading one discovery report (`ListingLimits.report_timeout`, plus the long poll's wait), and the pause
# between two reads of a report that did not wait (`PrimerSettings.report_poll_interval`).
MCP_REPORT: Final[Tags] = ("workspace-mcp", "report")
MCP_REPORT_POLL: Final[Tags] = ("workspace-mcp", "report-poll")
# One workspace tool call (`SessionSettings.call_timeout`).
MCP_CALL: Final[Tags] = ("workspace-mcp", "call")

# One request to Coder's API, and the pause before retrying one that failed for a reason worth retrying.
CODER_REQUEST: Final[Tags] = ("coder", "request")
CODER_RETRY: Final[Tags] = ("coder", "retry")
# The pauses between looks at a build, at an agent's connection, and at its startup scripts.
CODER_BUILD_POLL: Final[Tags] = ("coder", "build-poll")
CODER_AGENT_POLL: Final[Tags] = ("coder", "agent-poll")
CODER_LIFECYCLE_POLL: Final[Tags] = ("coder", "lifecycle-poll")

# serve-mcp's pause between progress notifications while a building tool waits.
SERVE_MCP_PROGRESS: Final[Tags] = ("serve-mcp", "progress")

# The gateway's: dialling one of its servers (`GatewaySettings.connect_timeout`), listing one
# (`list_timeout`), one tool call routed to one (`call_timeout`), the pause before restarting one that
# failed (the restart backoff), and the pause between looks at the config files (`config_poll_seconds`).
GATEWAY_CONNECT: Final[Tags] = ("gateway", "connect")
GATEWAY_LIST: Final[Tags] = ("gateway", "list")
GATEWAY_CALL: Final[Tags] = ("gateway", "call")
GATEWAY_RESTART: Final[Tags] = ("gateway", "restart")
GATEWAY_CONFIG_POLL: Final[Tags] = ("gateway", "config-poll")
# A read of the gateway's /discovery held until the report changes (a long poll).
GATEWAY_REPORT_WAIT: Final[Tags] = ("gateway", "report-wait")

# A shared tool cache's calls to its store (`RedisCacheSettings.call_timeout`), the pauses of a listing's
# lease (renewing it; a waiting process looking again), and the pause before its change feed reconnects.
CACHE_CALL: Final[Tags] = ("cache", "call")
CACHE_LEASE: Final[Tags] = ("cache", "lease")
CACHE_RECONNECT: Final[Tags] = ("cache", "reconnect")
