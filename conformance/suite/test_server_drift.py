"""Server drift detection (rules sections 2 and 3): when ReportFullState must be set.

Generated multi-agent conversations (see :mod:`conformance.scenarios.drift`)
are played over each transport; the model judges every reply's flag. A run
in which the focused rule never had a reply to judge (every reply an
error_response, say) ends *not judged*, never as a pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from conformance.checks import Refusals, Transcript, expect_reply
from conformance.messages import full_status, heartbeat, new_uid
from conformance.plugin.fixtures import Clients
from conformance.profiles import active
from conformance.properties import conformance_property
from conformance.scenarios import coverage
from conformance.scenarios.coverage import FeatureRecord
from conformance.scenarios.drift import DriftRun, Focus, Scenario, Tally, scenarios
from conformance.target import Transport
from conformance.verdicts import Violation, Violations
from conformance.wire import AgentCap, ServerFlag


def _play(
    opamp: Clients, transport: Transport, focus: Focus, record: Callable[[FeatureRecord], None]
) -> Tally:
    """Generated scenarios, then a template for every required feature they missed."""
    tally = Tally()
    required = coverage.required(focus)
    generated: set[str] | None = None

    def play(scenario: Scenario) -> None:
        DriftRun(lambda: opamp.open(transport), focus, tally, new_uid).play(scenario)

    try:
        conformance_property(scenario=scenarios(focus, active().stateful_step_count))(play)()
        generated = set(tally.reached)
        for feature in sorted(required):
            if str(feature) not in tally.reached:
                play(coverage.template(feature))
    finally:
        by_generation = set(tally.reached) if generated is None else generated
        record(FeatureRecord(focus.value, transport.value, required, tally.reached, by_generation))
    if focus is not Focus.SHOULD:
        tally.require_judged(focus)
    return tally


@pytest.mark.requirement("SRV-FS-NEW")
def test_unknown_agent_with_partial_status_is_asked_for_full(
    opamp: Clients, transport: Transport, scenario_features: Callable[[FeatureRecord], None]
) -> None:
    """A first message without full status gets ReportFullState."""
    _play(opamp, transport, Focus.NEW, scenario_features)


@pytest.mark.requirement("SRV-FS-GAP")
def test_sequence_drift_is_answered_with_full_state_request(
    opamp: Clients, transport: Transport, scenario_features: Callable[[FeatureRecord], None]
) -> None:
    """Gaps, duplicates, backwards numbers and resets to 0 with partial status get the flag."""
    _play(opamp, transport, Focus.GAP, scenario_features)


@pytest.mark.requirement("SRV-FS-RECONNECT")
def test_reconnect_with_sequence_zero_is_asked_for_full(
    opamp: Clients, transport: Transport, scenario_features: Callable[[FeatureRecord], None]
) -> None:
    """After agent_disconnect, a return with sequence_num 0 and partial status gets the flag."""
    _play(opamp, transport, Focus.RECONNECT, scenario_features)


@pytest.mark.requirement("SRV-FS-CAPS")
def test_full_status_is_judged_by_declared_capabilities(
    opamp: Clients, transport: Transport, scenario_features: Callable[[FeatureRecord], None]
) -> None:
    """agent_description alone is not full status when a declared capability asks for more."""
    _play(opamp, transport, Focus.CAPS, scenario_features)


@pytest.mark.requirement("SRV-FS-QUIET", "SRV-FS-QUIET-FULL")
def test_no_full_state_request_without_drift(
    opamp: Clients, transport: Transport, scenario_features: Callable[[FeatureRecord], None]
) -> None:
    """Contiguous messages, and messages with full status, are not asked for full status."""
    tally = _play(opamp, transport, Focus.SHOULD, scenario_features)
    found = tally.findings()
    if found:
        # A rule that never had a chance is not judged, not passed, beside a finding.
        raise Violations(found, complete=not tally.unjudged(Focus.SHOULD))
    tally.require_judged(Focus.SHOULD)


#: Capability sets for the convergence check: the minimum, everything, and a mix.
CONVERGE_CAPS = (
    AgentCap.REPORTS_STATUS,
    AgentCap.ALL,
    AgentCap.REPORTS_STATUS | AgentCap.REPORTS_HEALTH | AgentCap.REPORTS_EFFECTIVE_CONFIG,
)
#: Round trips a conforming exchange needs at most: the request, the full answer, quiet.
SETTLE_WITHIN = 3
#: How long an exchange that does not settle is followed, in round trips.
FOLLOW_UP_TO = 25


@pytest.mark.requirement("SRV-FS-CONVERGE")
def test_full_state_exchange_settles(opamp: Clients, transport: Transport) -> None:
    """An agent that answers each ReportFullState at once with full status is soon left alone.

    An exchange cut short by an error_response is not judged; one that settles
    or loops is. If no exchange could be judged, neither is the rule.
    """
    refusals = Refusals()
    for caps in CONVERGE_CAPS:
        driver = opamp.open(transport)
        transcript = Transcript()
        uid = new_uid()
        started = time.monotonic()
        reply = expect_reply(transcript, driver.send(heartbeat(uid, 0, caps)))
        seq, flagged = 0, 0
        while reply.flags & ServerFlag.REPORT_FULL_STATE and seq < FOLLOW_UP_TO:
            flagged += 1
            seq += 1
            reply = expect_reply(transcript, driver.send(full_status(uid, seq, caps)))
        elapsed = time.monotonic() - started
        driver.close()
        if flagged > SETTLE_WITHIN - 1:
            settled = "and still had not settled" if seq >= FOLLOW_UP_TO else "before settling"
            raise Violation(
                "SRV-FS-CONVERGE",
                f"ReportFullState on {flagged} replies in a row although the agent answered"
                f" each at once with full, contiguous status: {seq + 1} requests in"
                f" {elapsed:.2f} s {settled} (caps {caps:#x})",
                transcript.render(),
            )
        # An exchange that ended in a refusal neither settled nor looped: not judged.
        refusals.count(reply)
    refusals.require_judged("SRV-FS-CONVERGE")
