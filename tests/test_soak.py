"""The soak benchmark's smoke run: a few turns with random faults, every one completed, nothing grown."""

from __future__ import annotations

import anyio
import pytest
from benchmarks.soak import SoakResult, soak

# Enough turns to meet a dozen fault kinds, in about ten seconds on 2 cores.
SMOKE_TURNS = 20


@pytest.fixture(scope="module")
def smoke() -> SoakResult:
    # No warm-up and no memory tracing: both cost seconds, and 20 turns say little about memory.
    return anyio.run(lambda: soak(SMOKE_TURNS, trace=False, warm_up_rounds=0))


def grown(result: SoakResult) -> dict[str, tuple[int, int]]:
    return {name: (start, end) for name, start, end, _, _, within in result.growth() if not within}


def test_a_short_soak_completes_every_turn_and_leaves_nothing_behind(smoke: SoakResult) -> None:
    assert smoke.failures == []
    assert smoke.completed == SMOKE_TURNS
    assert grown(smoke) == {}  # among them the tool cache: rebuilt workspaces' old agents are forgotten
