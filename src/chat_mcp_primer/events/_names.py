"""The event vocabulary: every name the library emits, once, with what it means.

Names are stable: tests and dashboards may rely on them. An event about a chat carries ``chat_id``; an
event about something many chats share (a session, a listing, a watch) carries the agent it is about
(``agent_id``, or ``workspace_id`` for a workspace's watch) instead.
"""

from __future__ import annotations

from enum import StrEnum


class EventName(StrEnum):
    """Every event the library emits. Each member is its name as a string: ``EventName.TURN_STARTED ==
    "turn.started"``."""

    # A chat's turn.
    TURN_STARTED = "turn.started"  # a turn began
    TURN_ENDED = "turn.ended"  # a turn ended: steps, stop_reason
    TURN_STEP_LIMIT = "turn.step_limit"  # the turn stopped at max_steps
    STEP_STARTED = "step.started"  # a model step began: step, tools offered
    TOOL_STARTED = "tool.started"  # a tool call began: tool
    TOOL_CALLED = "tool.called"  # a tool call returned: tool, is_error
    TOOL_UNKNOWN = "tool.unknown"  # the model called a tool it was not offered
    TOOL_BAD_ARGUMENTS = "tool.bad_arguments"  # the model's arguments were not a JSON object
    TOOL_RAISED = "tool.raised"  # a tool raised instead of returning a result: error_type
    TOOL_RESULT_TRUNCATED = "tool.result_truncated"  # a result was cut to the result limits
    MODEL_TOOLS_DROPPED = "model.tools_dropped"  # more tools than the provider accepts: offered, dropped
    CHAT_UPDATED = "chat.updated"  # the chat was bound to a workspace, build or agent
    # A lifecycle tool's build moved on (first seen, then each change): workspace_id, build_id, transition,
    # status (the job's: pending is queued, running, canceling, then succeeded, failed or canceled).
    WORKSPACE_BUILD_PROGRESS = "workspace.build_progress"
    # The agent a lifecycle tool waits for moved on (first seen, then each change): workspace_id, agent_id,
    # status (connecting, connected, timeout, disconnected), lifecycle_state (starting: startup scripts run).
    WORKSPACE_AGENT_PROGRESS = "workspace.agent_progress"
    TOOLS_ADDED = "tools.added"  # workspace tools are offered from the next step: count, names
    PREPARE_WAITING_FOR_PRIMER = "prepare.waiting_for_primer"  # a step is held for its fresh primer
    PREPARE_HOLD_ENDED = "prepare.hold_ended"  # the held step goes on: reason (primer ended, bound, tools listed)
    PRIMER_STARTED = "primer.started"  # the primer began for a ready agent
    PRIMER_ATTEMPT = "primer.attempt"  # one discovery attempt of the primer: attempt, outcome, tools
    PRIMER_WOKEN = "primer.woken"  # a wake-up ended the primer's pause early
    PRIMER_SIGNAL = "primer.signal"  # the workspace changed, or a refused endpoint accepts: reason
    PRIMER_SUCCEEDED = "primer.succeeded"  # every server of the agent listed tools
    PRIMER_CONFIRMED_EMPTY = "primer.confirmed_empty"  # the agent exposes no MCP server
    PRIMER_GAVE_UP = "primer.gave_up"  # the budget ran out without every server listing (or futile=True)
    PRIMER_CANCELLED = "primer.cancelled"  # the primer was cancelled (rebind, turn ended)
    DISCOVERY_CONFIRMED_EMPTY = "discovery.confirmed_empty"  # a step found the agent has no MCP server
    # The app proxy refused every server that did not list for good: the turn makes no more attempts.
    DISCOVERY_FUTILE = "discovery.futile"
    DISCOVERY_RESOLVE_FAILED = "discovery.resolve_failed"  # looking up the chat's agent failed: reason

    # Shared by the chats of an agent: they carry agent_id.
    DISCOVERY_CACHE_HIT = "discovery.cache_hit"  # an attempt found a server's tools cached (chat_id: a chat's)
    DISCOVERY_JOINED_LISTING = "discovery.joined_listing"  # an attempt joined a listing in flight (the same)
    DISCOVERY_SERVER_LISTED = "discovery.server_listed"  # a server's tools were listed (and cached): tools
    DISCOVERY_SERVER_FAILED = "discovery.server_failed"  # a server's listing failed: reason
    # Another process on the shared cache listed the server, and this one took its result: tools, reason.
    DISCOVERY_LISTED_ELSEWHERE = "discovery.listed_elsewhere"
    DISCOVERY_STALE_LISTING_DROPPED = "discovery.stale_listing_dropped"  # overtaken by a change: not cached
    DISCOVERY_TOOL_SKIPPED = "discovery.tool_skipped"  # a listed tool was unusable: tool, reason
    DISCOVERY_DESCRIPTION_TRUNCATED = "discovery.description_truncated"  # a tool's description was cut
    DISCOVERY_CATALOGUE_CHANGED = "discovery.catalogue_changed"  # a server said tools/list_changed
    # A server's discovery report (the workspace gateway's): server.
    DISCOVERY_REPORT_PENDING = "discovery.report_pending"  # not every server behind it was tried: no listing
    DISCOVERY_REPORTED_EMPTY = "discovery.reported_empty"  # all were tried, none has tools: confirmed empty
    DISCOVERY_REPORT_NEW_RUN = "discovery.report_new_run"  # the gateway restarted: the old run's tools are gone
    DISCOVERY_REPORT_FAILS_OPEN = "discovery.report_fails_open"  # pending past report_pending_limit: listed anyway
    DISCOVERY_REPORT_CHANGED = "discovery.report_changed"  # a waited-on report changed: phase
    DISCOVERY_NO_REPORT = "discovery.no_report"  # the endpoint publishes none (asked once per agent): reason
    PREPARE_POLL_BACKING_OFF = "prepare.poll_backing_off"  # the held-step poll looks less often now
    SESSION_DIALING = "session.dialing"  # an MCP session is being opened
    SESSION_DIAL_QUEUED = "session.dial_queued"  # it waits for a place among the concurrent handshakes
    SESSION_REFUSED = "session.refused"  # an endpoint off the deployment's origin was never dialled
    SESSION_RESPONSE_REFUSED = "session.response_refused"  # a response was cut off at its bound: reason
    SESSION_IDLE_CLOSED = "session.idle_closed"  # a session unused for session_idle_timeout was closed
    SESSION_CLOSED = "session.closed"  # a session ended
    PRIMER_WATCH_FAILED = "primer.watch_failed"  # a workspace's change stream broke (workspace_id): reason

    # A shared tool cache's (`RedisToolCache`), about the sharing itself: they carry no chat or agent.
    CACHE_UNAVAILABLE = "cache.unavailable"  # a call to the shared store failed: operation, reason (once per outage)
    CACHE_RECONNECTED = "cache.reconnected"  # the store answers again: this process's copies were dropped
    CACHE_NEWS = "cache.news"  # another process changed the cache: kind, workspace_id, agent_id, server
    CACHE_LEASE_TAKEN_OVER = "cache.lease_taken_over"  # a listing's holder went silent: this process lists: server

    # The runtime's.
    SESSION_CLOSE_FORCED = "session.close_forced"  # sessions that did not close within close_grace: sessions


# The events about shared things, which carry the agent (the watch: its workspace). An attempt's cache hit
# or joined listing carries its chat's id too, unless the held-step poll (shared by the agent's chats) made it.
AGENT_EVENTS = frozenset(
    {
        EventName.DISCOVERY_CACHE_HIT,
        EventName.DISCOVERY_JOINED_LISTING,
        EventName.DISCOVERY_SERVER_LISTED,
        EventName.DISCOVERY_SERVER_FAILED,
        EventName.DISCOVERY_LISTED_ELSEWHERE,
        EventName.DISCOVERY_STALE_LISTING_DROPPED,
        EventName.DISCOVERY_TOOL_SKIPPED,
        EventName.DISCOVERY_DESCRIPTION_TRUNCATED,
        EventName.DISCOVERY_CATALOGUE_CHANGED,
        EventName.DISCOVERY_REPORT_PENDING,
        EventName.DISCOVERY_REPORTED_EMPTY,
        EventName.DISCOVERY_REPORT_NEW_RUN,
        EventName.DISCOVERY_REPORT_FAILS_OPEN,
        EventName.DISCOVERY_REPORT_CHANGED,
        EventName.DISCOVERY_NO_REPORT,
        EventName.PREPARE_POLL_BACKING_OFF,
        EventName.SESSION_DIALING,
        EventName.SESSION_DIAL_QUEUED,
        EventName.SESSION_REFUSED,
        EventName.SESSION_RESPONSE_REFUSED,
        EventName.SESSION_IDLE_CLOSED,
        EventName.SESSION_CLOSED,
        EventName.PRIMER_WATCH_FAILED,
    }
)
# The runtime's own, and its shared cache's.
RUNTIME_EVENTS = frozenset(
    {
        EventName.SESSION_CLOSE_FORCED,
        EventName.CACHE_UNAVAILABLE,
        EventName.CACHE_RECONNECTED,
        EventName.CACHE_NEWS,
        EventName.CACHE_LEASE_TAKEN_OVER,
    }
)
# Every other event is about one chat, and carries its chat_id.
CHAT_EVENTS = frozenset(EventName) - AGENT_EVENTS - RUNTIME_EVENTS
