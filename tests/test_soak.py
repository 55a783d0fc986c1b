"""The soak benchmark's smoke run: a few turns with random faults, every one completed, nothing grown."""

from __future__ import annotations

import anyio
from benchmarks.soak import soak

# Enough turns to meet a dozen fault kinds, in about ten seconds on 2 cores.
SMOKE_TURNS = 20


def test_a_short_soak_completes_every_turn_and_leaves_nothing_behind() -> None:
    # No warm-up and no memory tracing: both cost seconds, and 20 turns say little about memory.
    result = anyio.run(lambda: soak(SMOKE_TURNS, trace=False, warm_up_rounds=0))

    assert result.failures == []
    assert result.completed == SMOKE_TURNS
    grown = {name: (start, end) for name, start, end, _, _, within in result.growth() if not within}
    assert grown == {}
