from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

import anyio

from chat_mcp_primer.clock import Clock
from chat_mcp_primer.events import Events
from chat_mcp_primer.workspace_mcp._discovery import DiscoveryResult, Outcome
from chat_mcp_primer.workspace_mcp._settings import PrimerSettings
from chat_mcp_primer.workspace_mcp._signals import Signal

# Tags of the primer's pause between attempts, for test clocks to trap.
RETRY_TAGS = ("primer", "retry")


class PrimerEnd(StrEnum):
    SUCCEEDED = "succeeded"
    CONFIRMED_EMPTY = "confirmed_empty"
    GAVE_UP = "gave_up"


@dataclass(frozen=True, slots=True)
class PrimerReport:
    end: PrimerEnd
    attempts: int
    last: DiscoveryResult


def next_pause(settings: PrimerSettings, attempts: int, remaining: float) -> float | None:
    """The pause after attempt number ``attempts``, or None when the attempt budget is spent.

    Reference: always ``retry_interval``. Primed: ``first_pause`` doubling while that is shorter than
    ``retry_interval``; after that ``retry_interval``, stretched when the attempts left would not all fit in
    the ``remaining`` budget, so at most ``max_attempts`` are ever made.
    """
    if settings.strategy == "reference":
        return settings.retry_interval
    left = settings.max_attempts - attempts
    if left <= 0:
        return None
    ramp: float = settings.first_pause * 2.0 ** (attempts - 1)
    if ramp < settings.retry_interval:
        return ramp
    return max(settings.retry_interval, remaining / left)


async def run_primer(
    attempt: Callable[[], Awaitable[DiscoveryResult]],
    clock: Clock,
    settings: PrimerSettings,
    events: Events,
    *,
    chat_id: str,
    wake: Signal | None = None,
) -> PrimerReport:
    """Retry discovery until every MCP server of the agent listed tools, or the budget is spent.

    An attempt at once, then one after each pause (`next_pause`); the budget ``max_wait`` is checked
    only after an attempt returns, so it limits when an attempt may start, not how long one in flight
    may run. The reference strategy pauses ``retry_interval`` every time: with a server that never lists
    tools, 16 attempts and 15 pauses in 30 s. The primed strategy starts with short pauses, ends a pause
    early when ``wake`` is set (something says a retry may now succeed), and never exceeds
    ``max_attempts``. Errors and empty listings are treated alike. A workspace with no MCP endpoint stops
    at once (primed only). Cancellation propagates, after a ``primer.cancelled`` event.
    """
    started = clock.now()
    primed = settings.strategy == "primed"
    attempts = 0
    events.emit("primer.started", chat_id=chat_id)
    try:
        while True:
            attempts += 1
            result = await attempt()
            events.emit(
                "primer.attempt",
                chat_id=chat_id,
                attempt=attempts,
                outcome=result.outcome.value,
                tools=len(result.tools),
            )
            if result.outcome is Outcome.NO_ENDPOINTS and primed:
                events.emit("primer.confirmed_empty", chat_id=chat_id, attempts=attempts)
                return PrimerReport(PrimerEnd.CONFIRMED_EMPTY, attempts, result)
            if result.outcome is Outcome.OK:
                events.emit("primer.succeeded", chat_id=chat_id, attempts=attempts, tools=len(result.tools))
                return PrimerReport(PrimerEnd.SUCCEEDED, attempts, result)
            remaining = started + settings.max_wait - clock.now()
            pause = next_pause(settings, attempts, remaining) if remaining > 0 else None
            if pause is None:
                events.emit("primer.gave_up", chat_id=chat_id, attempts=attempts, outcome=result.outcome.value)
                return PrimerReport(PrimerEnd.GAVE_UP, attempts, result)
            if wake is None or not primed:
                await clock.sleep(pause, *RETRY_TAGS)
            elif await wake.sleep(clock, pause, *RETRY_TAGS):
                events.emit("primer.woken", chat_id=chat_id, attempts=attempts)
    except anyio.get_cancelled_exc_class():
        events.emit("primer.cancelled", chat_id=chat_id, attempts=attempts)
        raise
