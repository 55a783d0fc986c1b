"""The settings of workspace MCP, by concern: the primer and held step, MCP sessions, listings.

Each component is handed the one that holds what it reads. Every field is a knob a test or an operator
may turn, never a module constant, and says why it has its default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Literal

McpMode = Literal["auto", "legacy"]
Strategy = Literal["primed", "reference"]


def _check(settings: object, names: tuple[str, ...], holds: Callable[[float], bool], what: str) -> None:
    for name in names:
        if not holds(getattr(settings, name)):
            raise ValueError(f"{type(settings).__name__}.{name} must {what}")


def _not_negative(value: float) -> bool:
    return value >= 0


def _positive(value: float) -> bool:
    return value > 0


def _at_least_one(value: float) -> bool:
    return value >= 1


@dataclass(frozen=True, slots=True)
class PrimerSettings:
    """How discovery of a workspace's MCP tools waits, retries and gives up, and how a step is held for it.

    ``strategy="primed"`` (the default) closes the reference's gaps: pauses that start short and end
    early when something says a retry may now succeed, a bounded wait for the primer before the next
    step, no budget spent on a workspace without MCP servers. ``strategy="reference"`` reproduces Coder's
    chat daemon exactly, gaps included, for side-by-side comparison. The budgets are the reference's.
    """

    strategy: Strategy = "primed"
    # Budget for starting new attempts after a workspace became ready. Templates without MCP servers
    # must not add more than this to a turn, and 30 s covers a typical cold start of an MCP server.
    max_wait: float = 30.0
    # Pause between attempts: short enough that tools appear within a step or two of being ready,
    # long enough not to hammer a server that is still starting. The reference's fixed pause; the
    # primed strategy's longest one.
    retry_interval: float = 2.0
    # Primed: the first pause, doubling up to retry_interval. A server that is a moment away from ready
    # is tried again almost at once; one that is far from ready soon costs no more than the reference.
    first_pause: float = 0.1
    # Primed: never more attempts than the reference makes in max_wait when tools never come (16 in
    # 30 s), however short the early pauses: later pauses stretch to stay within it.
    max_attempts: int = 16
    # Primed: how long prepare_tools may hold the next step for a primer in flight for a just-ready agent
    # (Coder's later design waits 15 s for the agent's discovery report). It returns the moment the
    # primer ends, either way.
    prepare_wait: float = 15.0
    # Primed: while steps are held for their primers, how often the hub looks for the agent's tools (a
    # cheap listing, one per agent however many chats are held on it, a cache hit once anyone has them),
    # standing in for the model steps held back, each of which would have listed once: a server that
    # starts listing with no signal is found within ~0.1 s on average, at 5 listings a second per agent
    # and server while a step is held (at most prepare_wait) and tools are missing, for the first
    # prepare_poll_patience of a server answering without them.
    prepare_poll_interval: float = 0.2
    # Primed: how long a server that answers without tools (empty, or with an error) is looked at every
    # prepare_poll_interval, counted from its first such answer (one refusing connections has not). A server
    # that lists at all mostly does so within seconds of answering; 10 s keeps the benchmark's silent
    # servers, ready 0-10 s after the agent, found within ~0.1 s at p50. Past it, each pause doubles.
    prepare_poll_patience: float = 10.0
    # Primed: the longest pause of the held step's poll once it backs off. As long as the primer's own
    # pause by then (retry_interval): the poll then costs no more than the primer's attempts, and a 15 s
    # hold against a server that never lists makes ~66 listings instead of ~86.
    prepare_poll_max_interval: float = 2.0
    # Primed: while an endpoint refuses connections, how often to knock (a bare TCP connect, no MCP
    # traffic) to learn the moment it starts to accept.
    probe_interval: float = 0.1
    # An endpoint that publishes a discovery report (the workspace gateway) says when it has tried every
    # server. While its report is pending, nothing is listed; this long after it was first seen pending,
    # listing goes ahead anyway (fails open), as Coder's chat gives its agent's report 15 s.
    report_pending_limit: float = 15.0
    # While a primer waits on a pending report, the hub asks the gateway to answer only once the report
    # changes (a long poll, `Prefer: wait`), so a change is heard in the time of one request; 25 s keeps
    # the request under the idle timeouts of the proxies between.
    report_wait: float = 25.0
    # Between two asks of a report that did not wait (a server that ignores `Prefer: wait`, an error):
    # Coder's chat polls its agent's report every 0.5 s.
    report_poll_interval: float = 0.5
    # How many chats may start a turn, a primer or a discovery attempt, or go on after an attempt, in one
    # pass of the event loop; the others wait for later passes. Each does 30 to 70 µs of work before it
    # waits again, so a thousand woken at once (their servers listed together, their primers started
    # together) would stall the loop for 50 ms; 32 keep a pass near 2 ms, and a thousand still go
    # through in ~30 passes. Every turn of a runtime shares one pacer.
    admissions_per_pass: int = 32

    def __post_init__(self) -> None:
        _check(self, tuple(f.name for f in fields(self) if f.name != "strategy"), _not_negative, "not be negative")
        positive = ("retry_interval", "first_pause", "probe_interval", "prepare_poll_interval", "report_poll_interval")
        _check(self, positive, _positive, "be positive")
        _check(self, ("max_attempts", "admissions_per_pass"), _at_least_one, "be at least 1")


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """How MCP sessions to workspace servers are dialled, kept, bounded and closed."""

    # Connecting and negotiating one MCP session; a cold agent may take most of this to accept.
    dial_timeout: float = 30.0
    # How many MCP handshakes may run at once. One costs about 6 ms of CPU in the SDK; a hundred at once
    # (a burst of workspaces coming up) interleave into event-loop stalls of 150 ms, eight keep them near
    # 10 ms while loopback and LAN round trips still overlap. The burst takes as long either way.
    dial_concurrency: int = 8
    # A handshake still unfinished after this long gives up its place (it goes on, bounded by
    # dial_timeout): a hung server must not hold up everyone else's dials. A healthy one takes ~25 ms.
    dial_slot_seconds: float = 1.0
    # A workspace tool may run a build or a test suite; five minutes bounds a hung server without
    # cutting real work short.
    call_timeout: float = 300.0
    # When sessions end they are closed politely (the server hears that the session is over); a server
    # that does not answer within this grace period is cut off, so it cannot hold up the end.
    close_grace: float = 1.0
    # A session that listed tools stays open for later attempts, turns and chats of the same agent; one
    # unused this long is closed (checked whenever sessions are used). Five minutes spans the pauses of a
    # conversation without keeping connections to forgotten workspaces.
    session_idle_timeout: float = 300.0
    # Every response a workspace server sends (a JSON answer, an error, one event of an event stream) is
    # counted as it arrives and cut off past this, before it is parsed; the session is then dropped. 8 MiB
    # holds a listing of thousands of tools with long descriptions and schemas, while a hostile or broken
    # server can no longer make the backend read hundreds of megabytes for one answer. Parsed, JSON of tiny
    # objects takes up to ~60 times its size (8 MiB of minimal tools, ~470 MB): lower this where memory is
    # tight and catalogues are small.
    max_response_bytes: int = 8 * 1024 * 1024
    # How MCP sessions negotiate: "auto" probes the 2026 protocol first, "legacy" goes straight to
    # the initialize handshake (saves the probe against old servers).
    mcp_mode: McpMode = "auto"

    def __post_init__(self) -> None:
        times = ("dial_timeout", "dial_slot_seconds", "call_timeout", "close_grace", "session_idle_timeout")
        _check(self, times, _not_negative, "not be negative")
        _check(self, ("dial_concurrency", "max_response_bytes"), _at_least_one, "be at least 1")


@dataclass(frozen=True, slots=True)
class ListingLimits:
    """What one server's tool listing may take: time, pages, tools, and the size of each tool."""

    # One listing (all pages). Longer than a workspace agent's own 30 s MCP connect timeout, so a cold
    # server's first connect can settle instead of being cut off just before it answers.
    discovery_timeout: float = 35.0
    # A paginated listing longer than this is treated as a server fault (likely a cursor bug).
    max_list_pages: int = 100
    # A listing (all its pages) with more tools than this is refused whole. No model can be offered that
    # many at once; 10,000 is the largest catalogue listed, offered and called end to end in the tests
    # (a few tens of MB parsed), while millions spread over pages would each fit the byte bound.
    max_tools_per_server: int = 10_000
    # Tool descriptions are sent to the model on every step; longer ones are truncated.
    max_description_chars: int = 4_096
    # An input schema larger than this (serialised) is refused: it would crowd the model's context.
    max_schema_bytes: int = 65_536
    # Reading one discovery report. It is a small JSON document the gateway has ready: 10 s is ample on
    # a loaded deployment, and bounds one behind a hung proxy.
    report_timeout: float = 10.0
    # A discovery report is cut off past this many bytes, before it is parsed: a report of the largest
    # sensible workspace (dozens of servers, a reason each) is a few kilobytes.
    max_report_bytes: int = 65_536
    # A report naming more servers than this is refused whole: no template runs that many.
    max_report_servers: int = 256
    # Names, run ids and reasons of a report are cut to one line of this many characters: enough for
    # "exited with status 1; restarting in 4 s", short enough to tell the model on every step.
    max_report_text_chars: int = 200
    # How many servers without tools the note to the model names at most; the rest are counted.
    max_note_servers: int = 8

    def __post_init__(self) -> None:
        times = ("discovery_timeout", "max_description_chars", "max_schema_bytes", "report_timeout")
        _check(self, times, _not_negative, "not be negative")
        counts = ("max_list_pages", "max_tools_per_server", "max_report_bytes", "max_report_servers")
        _check(self, (*counts, "max_report_text_chars", "max_note_servers"), _at_least_one, "be at least 1")
