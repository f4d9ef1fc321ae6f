"""Property tests with a bounded cost: Hypothesis settings from the profile, and a shrink budget.

Shrinking replays a failing conversation many times; against a target that
times out, each replay costs a full timeout. :class:`ShrinkBudget` stops the
search for smaller examples once the profile's ``shrink_seconds`` have passed
since the first failure: later new examples are rejected, while examples
already seen give the same outcome again from a cache (Hypothesis replays
examples and insists on consistent answers), so Hypothesis still reports the
smallest failure found so far.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from hypothesis import given, reject
from hypothesis.strategies import SearchStrategy

from conformance.profiles import active, conformance_settings
from conformance.verdicts import Violation, Violations


class ShrinkBudget:
    """Remembers failing examples and ends the search once the budget is spent.

    ``total`` (optional) bounds the whole search: past it, new examples are
    passed over without touching the network and counted in ``passed_over``.
    """

    def __init__(self, seconds: float, total: float | None = None) -> None:
        self.seconds = seconds
        self.total = total
        self.started = time.monotonic()
        self.passed_over = 0
        self.first_failure: float | None = None
        #: Outcome of every example run so far: the violation, or None for a pass.
        self.outcomes: dict[str, Violation | Violations | None] = {}

    def exhausted(self) -> bool:
        return (
            self.first_failure is not None and time.monotonic() - self.first_failure > self.seconds
        )

    def run(self, key: str, body: Callable[[], None]) -> None:
        if key in self.outcomes:
            # Hypothesis replays examples; once the budget is spent the network
            # is not asked again, and a replay must agree with the first run.
            known = self.outcomes[key]
            if known is not None:
                raise known
            if self.exhausted():
                return
        if self.exhausted():
            reject()
        if self.total is not None and time.monotonic() - self.started > self.total:
            self.passed_over += 1
            return
        try:
            body()
        except (Violation, Violations) as exc:
            if self.first_failure is None:
                self.first_failure = time.monotonic()
            self.outcomes[key] = exc
            raise
        self.outcomes[key] = None


def conformance_property(
    *,
    time_budget: float | None = None,
    max_examples: int | None = None,
    **strategies: SearchStrategy[Any],
) -> Callable[[Callable[..., None]], Callable[[], None]]:
    """Turn ``fn(**generated)`` into a Hypothesis test run with the active profile.

    Define it inside the pytest test and call it there, so that every test
    call gets a fresh shrink budget. ``time_budget`` bounds the whole search
    in seconds (for tests whose every example may cost a full timeout);
    ``max_examples`` overrides the profile's count (agent properties, where
    every example launches a process).
    """

    def decorate(fn: Callable[..., None]) -> Callable[[], None]:
        budget = ShrinkBudget(active().shrink_seconds, time_budget)

        @functools.wraps(fn)
        def body(**kwargs: Any) -> None:
            key = repr(sorted(kwargs.items()))
            budget.run(key, lambda: fn(**kwargs))

        overrides = {} if max_examples is None else {"max_examples": max_examples}
        runner: Callable[[], None] = conformance_settings(**overrides)(given(**strategies)(body))
        return runner

    return decorate
