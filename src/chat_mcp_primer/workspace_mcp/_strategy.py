"""The two ways discovery can behave, as objects with one interface: the reference's and the primed one.

``PrimerSettings.strategy`` stays the public switch; `strategy_for` turns it into one of these, and no other
code asks which strategy it is: it asks the strategy what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from chat_mcp_primer.workspace_mcp._settings import PrimerSettings


class DiscoveryStrategy(Protocol):
    """When the primer retries, what wakes it, whether a step waits for it, and which of the reference's
    gaps stay open."""

    @property
    def settings(self) -> PrimerSettings: ...

    @property
    def primes_agents_found_ready(self) -> bool:
        """Whether a primer runs for an agent a tool found already running or building, rather than started.
        The reference sends no notification then (its upstream gap 1)."""
        ...

    @property
    def wakes_early(self) -> bool:
        """Whether the bus's wake-ups end the primer's pauses early, and feeds run for it."""
        ...

    @property
    def holds_step(self) -> bool:
        """Whether `prepare_tools` holds the next step (up to ``prepare_wait``) for a primer in flight."""
        ...

    @property
    def confirms_empty(self) -> bool:
        """Whether an agent with no MCP endpoint ends discovery at once instead of spending the budget."""
        ...

    @property
    def reads_reports(self) -> bool:
        """Whether discovery reads the discovery reports endpoints publish (the reference predates them)."""
        ...

    @property
    def done_after_first_look(self) -> bool:
        """Whether a chat that had a workspace when the turn began is done after its first attempt, whatever
        it found (the reference's upstream gap 2)."""
        ...

    def next_pause(self, attempts: int, remaining: float) -> float | None:
        """The pause after attempt number ``attempts``, or None when the attempt budget is spent;
        ``remaining`` is what is left of ``max_wait``."""
        ...


@dataclass(frozen=True, slots=True)
class ReferenceStrategy:
    """Coder's chat daemon, gaps included: a fixed pause, no early wake-up, no held step."""

    settings: PrimerSettings
    primes_agents_found_ready = False
    wakes_early = False
    holds_step = False
    confirms_empty = False
    reads_reports = False
    done_after_first_look = True

    def next_pause(self, attempts: int, remaining: float) -> float | None:
        return self.settings.retry_interval


@dataclass(frozen=True, slots=True)
class PrimedStrategy:
    """Ours: short pauses first, woken early, a bounded held step, and the reference's gaps closed."""

    settings: PrimerSettings
    primes_agents_found_ready = True
    wakes_early = True
    holds_step = True
    confirms_empty = True
    reads_reports = True
    done_after_first_look = False

    def next_pause(self, attempts: int, remaining: float) -> float | None:
        """``first_pause`` doubling while that is shorter than ``retry_interval``; after that
        ``retry_interval``, stretched when the attempts left would not all fit in the ``remaining`` budget,
        so at most ``max_attempts`` are ever made."""
        settings = self.settings
        left = settings.max_attempts - attempts
        if left <= 0:
            return None
        ramp: float = settings.first_pause * 2.0 ** (attempts - 1)
        if ramp < settings.retry_interval:
            return ramp
        return max(settings.retry_interval, remaining / left)


def strategy_for(settings: PrimerSettings) -> DiscoveryStrategy:
    if settings.strategy == "reference":
        return ReferenceStrategy(settings)
    return PrimedStrategy(settings)
