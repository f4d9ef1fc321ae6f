"""What a conforming agent may do in time, judged from the mock server's arrival times.

Pure functions, no I/O. Every bound has a relative tolerance and an
absolute slack (the gRPC connection-backoff test's lesson: 20 % and
100 ms), so scheduling noise on a loaded machine is never a finding.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    """The backoff bounds an agent is held to (``--backoff-floor``, ``--backoff-cap``)."""

    floor: float
    cap: float
    tolerance: float = 0.2
    slack: float = 0.1

    def at_least(self, seconds: float) -> float:
        """The shortest measured interval that still counts as ``seconds``."""
        return seconds * (1 - self.tolerance) - self.slack

    def at_most(self, seconds: float) -> float:
        """The longest measured interval that still counts as ``seconds``."""
        return seconds * (1 + self.tolerance) + self.slack

    @property
    def longest(self) -> float:
        """The longest wait a capped equal-jitter backoff draws: 1.5 x the cap (Elastic
        Agent waits cap/2 plus up to one more cap once it reaches the cap)."""
        return 1.5 * self.cap

    @property
    def grown(self) -> float:
        """By the third retry a growing backoff has at least tripled (or reached half the cap)."""
        return self.at_least(min(3 * self.floor, self.cap / 2))


#: Intervals needed before growth is judged (retries 3 and later are compared): five,
#: so that a slow geometric backoff (x1.3 per retry) has had room to grow.
GROWTH_INTERVALS = 5
#: Intervals two agents must share before "no jitter" is concluded.
JITTER_INTERVALS = 6


def intervals(times: Sequence[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


def fmt(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:.3f}" for v in values) + "] s"


def below_floor(gaps: Sequence[float], timing: Timing) -> int | None:
    """Index of the first interval shorter than the floor allows, if any."""
    return next((i for i, g in enumerate(gaps) if g < timing.at_least(timing.floor)), None)


def attempt_rate(times: Sequence[float]) -> float:
    """Attempts per second over the observed span (0 for fewer than two)."""
    if len(times) < 2 or times[-1] <= times[0]:
        return 0.0
    return (len(times) - 1) / (times[-1] - times[0])


def not_growing(gaps: Sequence[float], timing: Timing) -> bool:
    """True when enough intervals were seen and the later ones never grew past the bound."""
    if len(gaps) < GROWTH_INTERVALS:
        return False
    return max(gaps[2:]) < timing.grown


def not_growing_from_first(gaps: Sequence[float], timing: Timing) -> bool:
    """Like :func:`not_growing`, measured against the agent's own first interval: by the
    third retry the interval has doubled it (or reached half the cap). For an agent whose
    backoff starts below the floor (that is a floor finding of its own) but does grow."""
    if len(gaps) < GROWTH_INTERVALS:
        return False
    return max(gaps[2:]) < timing.at_least(min(2 * gaps[0], timing.cap / 2))


def same_schedule(a: Sequence[float], b: Sequence[float]) -> bool:
    """Two agents' retry intervals agree to within 3 % or 30 ms every time: no jitter.

    For an agent drawing equal jitter the chance of six such agreements is
    about 1 in 100,000; for one without jitter they always agree.
    """
    n = JITTER_INTERVALS
    if len(a) < n or len(b) < n:
        return False
    return all(abs(x - y) <= max(0.03 * x, 0.03) for x, y in zip(a[:n], b[:n], strict=True))


# -- sizing a scenario's window to the agent's own clock ------------------------

#: The spec's default poll interval and recommended retry floor, in seconds: what an
#: agent whose clock was not measured is assumed to use.
SPEC_POLL = 30.0
SPEC_RETRY_FLOOR = 30.0
#: Seconds a scenario allows for launching the agent and its first message.
START_ALLOWANCE = 2.0


def retry_waits(timing: Timing, retries: int, first: float | None = None) -> list[float]:
    """The longest waits a conforming exponential backoff may take for ``retries`` retries
    in a row: the first ``first`` (a measured first retry) or twice the floor (equal jitter
    draws up to that), doubling each time, never beyond :attr:`Timing.longest`."""
    start = 2 * timing.floor if first is None else first
    return [min(timing.longest, start * 2.0**n) for n in range(retries)]


def window_needed(
    timing: Timing, *, polls: int = 0, period: float = 0.0, waits: Sequence[float] = ()
) -> float:
    """Seconds from launch a scenario needs: :data:`START_ALLOWANCE`, ``polls`` poll
    periods and the ``waits`` (retries, asked delays), each at its upper tolerance."""
    need = START_ALLOWANCE + polls * timing.at_most(period) if polls else START_ALLOWANCE
    return need + sum(timing.at_most(w) for w in waits)


def window_remedy(seconds: float) -> str:
    """The option and value that give a scenario ``seconds`` (rounded up to 5 s)."""
    return f"--agent-window={max(5, 5 * math.ceil(seconds / 5))}"


def describe_clock(period: float | None, offered: bool) -> str:
    """How the agent's clock was known, for a *not judged* reason."""
    if period is None:
        return f"its poll period was not measured (assumed the spec's {SPEC_POLL:g} s)"
    how = "the heartbeat interval it accepted" if offered else "measured"
    return f"its poll period is {period:.3g} s ({how})"


#: Liveness answers a conforming agent gives: per Fleet condition and ``failon``.
#: "up" is a 200, "down" any 5xx (Elastic Agent answers 500, or 503 for a stale heartbeat).
LIVENESS: dict[str, dict[str, str]] = {
    "failing": {"heartbeat": "up", "failed": "down", "degraded": "down"},
    "warning": {"heartbeat": "up", "failed": "up", "degraded": "down"},
    "connected": {"heartbeat": "up", "failed": "up", "degraded": "up"},
}


def liveness_matches(expected: str, status: int | None) -> bool:
    if status is None:
        return False
    return status == 200 if expected == "up" else 500 <= status <= 599
