from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

import anyio

from chat_mcp_primer.clock import Clock, tags
from chat_mcp_primer.events import EventName, Events
from chat_mcp_primer.workspace_mcp._discovery import DiscoveryResult, Outcome
from chat_mcp_primer.workspace_mcp._signal import Signal
from chat_mcp_primer.workspace_mcp._strategy import DiscoveryStrategy


class PrimerEnd(StrEnum):
    SUCCEEDED = "succeeded"
    CONFIRMED_EMPTY = "confirmed_empty"
    GAVE_UP = "gave_up"


@dataclass(frozen=True, slots=True)
class PrimerReport:
    end: PrimerEnd
    attempts: int
    last: DiscoveryResult


async def run_primer(
    attempt: Callable[[], Awaitable[DiscoveryResult]],
    clock: Clock,
    strategy: DiscoveryStrategy,
    events: Events,
    *,
    wake: Signal | None = None,
) -> PrimerReport:
    """Retry discovery until every MCP server of the agent listed tools, or the budget is spent.

    An attempt at once, then one after each pause (the strategy's `next_pause`); the budget ``max_wait``
    is checked only after an attempt returns, so it limits when an attempt may start, not how long one in
    flight may run. The reference strategy pauses ``retry_interval`` every time: with a server that never
    lists tools, 16 attempts and 15 pauses in 30 s. The primed strategy starts with short pauses, ends a
    pause early when ``wake`` is set (something says a retry may now succeed), and never exceeds
    ``max_attempts``. Errors and empty listings are treated alike, except a `futile` attempt (every
    server that did not list was refused for good by the app proxy), which ends the primer at once. A
    workspace with no MCP endpoint, or whose discovery reports say none of its servers has tools, stops
    at once when the strategy confirms empty. An attempt that found a report pending (nothing listed yet)
    is followed by a wait for ``wake`` (the report changing) rather than a pause of the schedule, up to
    ``report_pending_limit``, and does not count toward ``max_attempts``: a gateway bringing up many
    servers one by one cannot use the primer's attempts up. Cancellation propagates, after a
    ``primer.cancelled`` event. ``events`` carry the chat's id.
    """
    started = clock.now()
    max_wait = strategy.settings.max_wait
    if not strategy.wakes_early:
        wake = None
    attempts = 0
    # The attempts that found a report pending, which the schedule does not count.
    waited_on_reports = 0
    events.emit(EventName.PRIMER_STARTED)
    try:
        while True:
            attempts += 1
            result = await attempt()
            events.emit(
                EventName.PRIMER_ATTEMPT,
                attempt=attempts,
                outcome=result.outcome.value,
                tools=len(result.tools),
            )
            if result.confirmed_empty and strategy.confirms_empty:
                events.emit(EventName.PRIMER_CONFIRMED_EMPTY, attempts=attempts)
                return PrimerReport(PrimerEnd.CONFIRMED_EMPTY, attempts, result)
            if result.outcome is Outcome.OK:
                events.emit(EventName.PRIMER_SUCCEEDED, attempts=attempts, tools=len(result.tools))
                return PrimerReport(PrimerEnd.SUCCEEDED, attempts, result)
            if result.futile:
                # The app proxy refused the session token or the app: no retry in this turn can mend it.
                events.emit(EventName.PRIMER_GAVE_UP, attempts=attempts, outcome=result.outcome.value, futile=True)
                return PrimerReport(PrimerEnd.GAVE_UP, attempts, result)
            remaining = started + max_wait - clock.now()
            if result.pending and wake is not None and remaining > 0:
                waited_on_reports += 1
                pause: float | None = min(remaining, strategy.settings.report_pending_limit)
            else:
                pause = strategy.next_pause(attempts - waited_on_reports, remaining) if remaining > 0 else None
            if pause is None:
                events.emit(EventName.PRIMER_GAVE_UP, attempts=attempts, outcome=result.outcome.value)
                return PrimerReport(PrimerEnd.GAVE_UP, attempts, result)
            if wake is None:
                await clock.sleep(pause, *tags.PRIMER_RETRY)
            elif await wake.sleep(clock, pause, *tags.PRIMER_RETRY):
                events.emit(EventName.PRIMER_WOKEN, attempts=attempts)
    except anyio.get_cancelled_exc_class():
        events.emit(EventName.PRIMER_CANCELLED, attempts=attempts)
        raise
