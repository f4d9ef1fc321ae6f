"""The agent timing model: floor, growth, jitter and liveness expectations."""

from __future__ import annotations

import random

import pytest

from conformance.model.agent_timing import (
    LIVENESS,
    Timing,
    attempt_rate,
    below_floor,
    intervals,
    liveness_matches,
    not_growing,
    same_schedule,
)

ELASTIC = Timing(floor=60.0, cap=600.0)
SCALED = Timing(floor=0.25, cap=1.0)


def equal_jitter(initial: float, cap: float, n: int, rng: random.Random) -> list[float]:
    """Elastic Agent's draws: [d/2, d/2 + previous d), d = initial * 2^n capped."""
    waits = []
    for attempt in range(1, n + 1):
        d, previous = (min(cap, initial * 2**k) for k in (attempt, attempt - 1))
        waits.append(d / 2 + rng.uniform(0, previous))
    return waits


def test_intervals_and_rate() -> None:
    assert intervals([1.0, 1.5, 2.5]) == [0.5, 1.0]
    assert attempt_rate([0.0, 0.5, 1.0]) == 2.0
    assert attempt_rate([3.0]) == 0.0


@pytest.mark.parametrize("timing", [ELASTIC, SCALED])
def test_equal_jitter_backoff_is_never_judged(timing: Timing) -> None:
    rng = random.Random(7)
    for _ in range(2000):
        gaps = equal_jitter(timing.floor, timing.cap, 8, rng)
        assert below_floor(gaps, timing) is None
        assert not not_growing(gaps, timing)


def test_a_tight_loop_is_below_the_floor() -> None:
    rng = random.Random(1)
    loop = [rng.uniform(0, 1.0) for _ in range(10)]  # the released 0-1 s pause
    assert below_floor(loop, ELASTIC) == 0


def test_tolerance_and_slack_absorb_scheduling_noise() -> None:
    assert below_floor([0.25 * 0.8 - 0.09], SCALED) is None
    assert below_floor([0.25 * 0.8 - 0.11], SCALED) == 0


def test_a_fixed_interval_is_not_growing_but_needs_enough_intervals() -> None:
    assert not_growing([0.25] * 5, SCALED)
    assert not not_growing([0.25] * 4, SCALED)  # too few to judge
    assert not not_growing([60.0, 120.0, 240.0, 480.0, 600.0], ELASTIC)
    slow = [60.0 * 1.3**k for k in range(5)]  # a slow geometric backoff still grows
    assert not not_growing(slow, ELASTIC)


@pytest.mark.parametrize("timing", [ELASTIC, SCALED])
def test_capped_equal_jitter_stays_within_the_longest_wait(timing: Timing) -> None:
    rng = random.Random(11)
    for _ in range(2000):
        assert max(equal_jitter(timing.floor, timing.cap, 10, rng)) <= timing.longest


def test_jitter_is_told_apart_from_lockstep() -> None:
    exact = [0.25, 0.5, 1.0, 1.0, 1.0, 1.0]
    assert same_schedule(exact, [g + 0.01 for g in exact])
    assert not same_schedule(exact[:5], exact[:5])  # too few to judge
    rng = random.Random(3)
    coincidences = sum(
        same_schedule(equal_jitter(0.25, 1.0, 6, rng), equal_jitter(0.25, 1.0, 6, rng))
        for _ in range(20000)
    )
    assert coincidences <= 2  # about 1 in 100,000 expected


def test_liveness_table_matches_the_facts() -> None:
    assert LIVENESS["failing"] == {"heartbeat": "up", "failed": "down", "degraded": "down"}
    assert LIVENESS["warning"]["failed"] == "up" and LIVENESS["warning"]["degraded"] == "down"
    assert set(LIVENESS["connected"].values()) == {"up"}
    assert liveness_matches("down", 500) and liveness_matches("down", 503)
    assert not liveness_matches("down", 200) and not liveness_matches("down", None)
    assert liveness_matches("up", 200) and not liveness_matches("up", 204)
