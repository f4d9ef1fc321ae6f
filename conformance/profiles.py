"""Run profiles: how many Hypothesis examples and how long the time windows are."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, settings


@dataclass(frozen=True)
class Profile:
    """Scales a run: examples per property, steps per stateful run, timeouts."""

    name: str
    max_examples: int
    stateful_step_count: int
    #: Bound on any one request/reply exchange, in seconds.
    request_timeout: float
    #: Bound on checking that a target is reachable at session start, in seconds.
    probe_timeout: float
    #: Time a failing property may spend shrinking after its first failure, in seconds.
    shrink_seconds: float
    #: Wall time after which a budgeted property (hostile input) stops trying new examples.
    test_budget: float = 60.0
    #: Examples per agent property: each one launches an agent process.
    agent_examples: int = 2
    #: Default observation window of one agent scenario, in seconds (``--agent-window``).
    agent_window: float = 30.0

    def hypothesis_settings(self, **overrides: Any) -> settings:
        """Hypothesis settings for this profile; ``deadline`` is always off."""
        values: dict[str, Any] = {
            "max_examples": self.max_examples,
            "stateful_step_count": self.stateful_step_count,
            "deadline": None,
            "suppress_health_check": [
                HealthCheck.function_scoped_fixture,
                HealthCheck.too_slow,
                HealthCheck.data_too_large,
            ],
            "print_blob": True,
        }
        values.update(overrides)
        return settings(**values)


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        "quick",
        max_examples=25,
        stateful_step_count=20,
        request_timeout=5.0,
        probe_timeout=5.0,
        shrink_seconds=5.0,
        test_budget=30.0,
        agent_examples=2,
        agent_window=30.0,
    ),
    "full": Profile(
        "full",
        max_examples=60,
        stateful_step_count=40,
        request_timeout=5.0,
        probe_timeout=10.0,
        shrink_seconds=30.0,
        test_budget=120.0,
        agent_examples=8,
        agent_window=300.0,
    ),
    "nightly": Profile(
        "nightly",
        max_examples=300,
        stateful_step_count=80,
        request_timeout=10.0,
        probe_timeout=15.0,
        shrink_seconds=60.0,
        test_budget=600.0,
        agent_examples=25,
        agent_window=1200.0,
    ),
}
DEFAULT_PROFILE = "quick"

_active: Profile = PROFILES[DEFAULT_PROFILE]


def activate(profile: Profile | str) -> Profile:
    """Make ``profile`` (or the one named so) what the suite's tests read.

    The plugin passes the parsed profile, so that ``--request-timeout``
    reaches tests that read :func:`active`.
    """
    global _active
    _active = PROFILES[profile] if isinstance(profile, str) else profile
    return _active


def active() -> Profile:
    return _active


def conformance_settings(**overrides: Any) -> settings:
    """Decorator for property tests: the active profile's Hypothesis settings."""
    return _active.hypothesis_settings(**overrides)
