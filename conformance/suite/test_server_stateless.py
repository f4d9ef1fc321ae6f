"""Several instances of one service (SRV-FS-STATELESS): drift judged as by a single server.

With two or more ``--target`` URLs, each agent's messages go to an instance
picked at random per message. Every MUST drift rule still holds (a missed
ReportFullState is reported under its own ID); a flag on a contiguous
message right after an instance switch is the SHOULD finding.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import strategies as st

from conformance.drivers import HttpDriver
from conformance.drivers.spread import SpreadDriver
from conformance.messages import new_uid
from conformance.outcomes import not_judged
from conformance.plugin.fixtures import Clients
from conformance.plugin.targets import TargetSession
from conformance.profiles import active
from conformance.properties import conformance_property
from conformance.scenarios.drift import (
    MAX_AGENTS,
    AgentPlan,
    Content,
    DriftRun,
    Focus,
    Kind,
    Scenario,
    Step,
    Tally,
    scenarios,
)
from conformance.target import Transport
from conformance.verdicts import Violation, Violations, first_per_rule, violations_of
from conformance.wire import AgentCap

#: A fixed conversation every per-process store gets wrong: seq 0 (full) to
#: instance 1, seq 1 to instance 2, seq 2 to instance 1, then seq 2 again to
#: instance 2, which saw seq 1 last and takes the duplicate for the next one.
INTERLEAVED_DUPLICATE = Scenario(
    agents=(AgentPlan(AgentCap.REPORTS_STATUS, 0, Content.FULL, 0),),
    steps=(
        Step(0, Kind.NEXT, Content.BARE, 0),
        Step(0, Kind.NEXT, Content.BARE, 0),
        Step(0, Kind.DUPLICATE, Content.BARE, 0),
    ),
)
INTERLEAVED_ROUTE = (0, 1, 0, 1)


def _instances(opamp: Clients, session: TargetSession) -> list[HttpDriver]:
    if len(session.targets) < 2:
        not_judged(
            f"one --target given ({session.primary.display}): spreading an agent's messages"
            " over instances of one service needs two or more",
            "give two or more --target URLs, one per instance of the service, each addressed"
            " directly (not through its load balancer): --target=http://a:8220"
            " --target=http://b:8220",
        )
    for target in session.targets:
        session.require_transport(target, Transport.HTTP)
    timeout = active().request_timeout
    return [HttpDriver(t.http_url, opamp.headers, timeout=timeout) for t in session.targets]


def _caught(run: Callable[[], None]) -> list[Violation]:
    """Run ``run()`` and return the violations it raised (other errors propagate)."""
    try:
        run()
    except (Violation, Violations, BaseExceptionGroup) as exc:
        found = violations_of(exc)
        if not found:
            raise
        return found
    return []


@pytest.mark.requirement("SRV-FS-STATELESS")
def test_instances_of_one_service_judge_drift_alike(
    opamp: Clients, conformance_session: TargetSession
) -> None:
    """Contiguous messages are not flagged after an instance switch; MUST rules still hold."""
    drivers = _instances(opamp, conformance_session)
    count = len(drivers)
    tally = Tally()

    steps = active().stateful_step_count
    # One instance per message, drawn up front (a message count's worth, reused
    # cyclically): shrinking moves them towards instance 1, keeping the switches
    # that matter.
    routes = st.lists(st.integers(0, count - 1), min_size=1, max_size=2 * steps + MAX_AGENTS)

    @conformance_property(scenario=scenarios(Focus.STATELESS, steps), route=routes)
    def spread(scenario: Scenario, route: list[int]) -> None:
        def opener() -> SpreadDriver:
            picks = itertools.cycle(route)
            return SpreadDriver(drivers, lambda: next(picks))

        DriftRun(opener, Focus.STATELESS, tally, new_uid).play(scenario)

    def interleaved() -> None:
        route = itertools.cycle(INTERLEAVED_ROUTE)
        DriftRun(
            lambda: SpreadDriver(drivers, lambda: next(route)), Focus.STATELESS, tally, new_uid
        ).play(INTERLEAVED_DUPLICATE)

    found = _caught(spread) + _caught(interleaved)
    for driver in drivers:
        driver.close()
    found += tally.findings()
    if found:
        complete = not tally.unjudged(Focus.STATELESS)
        raise Violations(first_per_rule(found), complete=complete)
    tally.require_judged(Focus.STATELESS)
