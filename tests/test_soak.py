"""The soak benchmark's smoke run: a few turns with random faults, every one completed, nothing grown."""

from __future__ import annotations

import anyio
import pytest
from benchmarks.soak import SoakResult, soak

# Enough turns to meet a dozen fault kinds, in about ten seconds on 2 cores.
SMOKE_TURNS = 20
# Measures known to grow, each pinned by an expected failure below until it is fixed.
KNOWN_LEAKS = {"cached_catalogues"}


@pytest.fixture(scope="module")
def smoke() -> SoakResult:
    # No warm-up and no memory tracing: both cost seconds, and 20 turns say little about memory.
    return anyio.run(lambda: soak(SMOKE_TURNS, trace=False, warm_up_rounds=0))


def grown(result: SoakResult) -> dict[str, tuple[int, int]]:
    return {name: (start, end) for name, start, end, _, _, within in result.growth() if not within}


def test_a_short_soak_completes_every_turn_and_leaves_nothing_behind(smoke: SoakResult) -> None:
    assert smoke.failures == []
    assert smoke.completed == SMOKE_TURNS
    assert {name: counts for name, counts in grown(smoke).items() if name not in KNOWN_LEAKS} == {}


@pytest.mark.xfail(
    strict=True,
    reason="the runtime's tool cache keeps the catalogue of every agent a workspace ever had (README, Soak)",
)
def test_the_tool_cache_forgets_the_agents_of_rebuilt_workspaces(smoke: SoakResult) -> None:
    assert "cached_catalogues" not in grown(smoke)
