from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

import anyio

from chat_mcp_primer.clock import Clock
from chat_mcp_primer.events import Events
from chat_mcp_primer.workspace_mcp._discovery import DiscoveryResult, Outcome
from chat_mcp_primer.workspace_mcp._settings import PrimerSettings

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


async def run_primer(
    attempt: Callable[[], Awaitable[DiscoveryResult]],
    clock: Clock,
    settings: PrimerSettings,
    events: Events,
    *,
    chat_id: str,
) -> PrimerReport:
    """Retry discovery until every MCP server of the agent listed tools, or the budget is spent.

    The reference schedule: an attempt at once, then one every ``retry_interval``; the budget
    ``max_wait`` is checked only after an attempt returns, so it limits when an attempt may start,
    not how long one in flight may run. With a server that never lists tools that is 16 attempts and
    15 pauses in 30 s. Errors and empty listings are treated alike. A workspace with no MCP endpoint
    stops at once without spending the budget. Cancellation propagates (after a ``primer.cancelled``
    event); nothing is cached by the primer itself beyond what its attempts cached.
    """
    started = clock.now()
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
            if result.outcome is Outcome.NO_ENDPOINTS:
                events.emit("primer.confirmed_empty", chat_id=chat_id, attempts=attempts)
                return PrimerReport(PrimerEnd.CONFIRMED_EMPTY, attempts, result)
            if result.complete:
                events.emit("primer.succeeded", chat_id=chat_id, attempts=attempts, tools=len(result.tools))
                return PrimerReport(PrimerEnd.SUCCEEDED, attempts, result)
            if clock.now() >= started + settings.max_wait:
                events.emit("primer.gave_up", chat_id=chat_id, attempts=attempts, outcome=result.outcome.value)
                return PrimerReport(PrimerEnd.GAVE_UP, attempts, result)
            await clock.sleep(settings.retry_interval, *RETRY_TAGS)
    except anyio.get_cancelled_exc_class():
        events.emit("primer.cancelled", chat_id=chat_id, attempts=attempts)
        raise
