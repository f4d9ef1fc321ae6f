"""The drift generator's power and precision, measured in-process against the twins' logic.

No network: each scenario is played against a fresh instance of a target's
``OpAMPLogic`` through a loopback stand-in for the driver. For every drift
twin, each focused run must find the expected rule in a good share of
examples (so that a 25-example quick run finds it with near certainty) and
never report a rule the twin does not break.
"""

from __future__ import annotations

import tomllib

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings

from conformance.drivers.exchange import Attempt, Exchange
from conformance.messages import new_uid
from conformance.scenarios.drift import DriftRun, Focus, Scenario, Tally, scenarios
from conformance.verdicts import Violation
from conformance.wire import AgentToServer
from fixtures.reference.logic import OpAMPLogic
from fixtures.reference.twins import BEHAVIOURS
from tests.suite_runner import REPO

MATRIX: dict[str, dict[str, list[str]]] = tomllib.loads(
    (REPO / "fixtures" / "kill_matrix.toml").read_text()
)
DRIFT_RULES = {f.value for f in Focus if f is not Focus.SHOULD}
SHOULD_RULES = {"SRV-FS-QUIET", "SRV-FS-QUIET-FULL"}
DRIFT_TARGETS = ["reference"] + [
    name
    for name, row in MATRIX.items()
    if set(row["fail"] + row["warn"]) & (DRIFT_RULES | SHOULD_RULES)
]
EXAMPLES = 120
#: Share of examples that must show the expected finding. With 25 examples a
#: run (quick profile), 0.25 per example misses with probability < 0.1 %.
MIN_RATE = 0.25


class Loopback:
    """Stands in for a driver: hands each message straight to a target's logic."""

    transport = "http"

    def __init__(self, logic: OpAMPLogic) -> None:
        self.logic = logic

    def send(self, msg: AgentToServer, *, timeout: float | None = None) -> Exchange:
        attempt = Attempt("http", msg, msg.ByteSize())
        return attempt.finish(status=200, reply=self.logic.handle(msg))

    def close(self) -> None:
        pass


def rates(behaviour: str, focus: Focus) -> dict[str, float]:
    """Per rule, the share of generated examples in which it was found."""
    found: dict[str, int] = {}
    seen = 0

    @settings(
        max_examples=EXAMPLES,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @seed(20261122)
    @given(scenarios(focus, 20))
    def run(scenario: Scenario) -> None:
        nonlocal seen
        seen += 1
        logic = BEHAVIOURS[behaviour]()
        tally = Tally()
        try:
            DriftRun(lambda: Loopback(logic), focus, tally, new_uid).play(scenario)
        except Violation as exc:
            found[exc.req_id] = found.get(exc.req_id, 0) + 1
        for rule in tally.violations:
            found[rule] = found.get(rule, 0) + 1

    run()
    return {rule: count / seen for rule, count in found.items()}


@pytest.mark.parametrize("focus", list(Focus), ids=lambda f: f.value)
@pytest.mark.parametrize("behaviour", DRIFT_TARGETS)
def test_focus_finds_exactly_what_the_twin_breaks(behaviour: str, focus: Focus) -> None:
    row = MATRIX[behaviour]
    broken = set(row["fail"] + row["warn"])
    wanted = (broken & SHOULD_RULES) if focus is Focus.SHOULD else (broken & {focus.value})
    measured = rates(behaviour, focus)
    assert set(measured) == wanted, f"{behaviour} under {focus.value}: {measured}"
    for rule in wanted:
        assert measured[rule] >= MIN_RATE, f"{behaviour} {rule}: {measured[rule]:.2f}"
