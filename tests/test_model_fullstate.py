"""Unit tests for the full-status oracle (rules.md sections 2 and 3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.messages import full_status, goodbye, heartbeat, partial_status
from conformance.model.fullstate import (
    STATUS_FIELDS,
    UNKNOWN,
    AgentHistory,
    FlagExpectation,
    Judgement,
    expected_report_full_state,
    is_full_status,
    missing_status_fields,
    next_history,
)
from conformance.wire import AgentCap, AgentToServer

UID = bytes(range(16))
RS = AgentCap.REPORTS_STATUS

#: Section 2 of rules.md, written out independently of the oracle's own table:
#: capability bit -> the sub-message it makes mandatory.
CAP_TO_FIELD: dict[int, str] = {
    AgentCap.REPORTS_HEALTH: "health",
    AgentCap.REPORTS_EFFECTIVE_CONFIG: "effective_config",
    AgentCap.REPORTS_REMOTE_CONFIG: "remote_config_status",
    AgentCap.REPORTS_PACKAGE_STATUSES: "package_statuses",
    AgentCap.REPORTS_AVAILABLE_COMPONENTS: "available_components",
    AgentCap.REPORTS_CONNECTION_SETTINGS_STATUS: "connection_settings_status",
}
ALL_FIELDS = ["agent_description", *CAP_TO_FIELD.values()]
#: Capability bits that demand no status sub-message of their own.
NEUTRAL_CAPS = [
    AgentCap.ACCEPTS_REMOTE_CONFIG,
    AgentCap.ACCEPTS_PACKAGES,
    AgentCap.REPORTS_OWN_TRACES,
    AgentCap.REPORTS_OWN_METRICS,
    AgentCap.REPORTS_OWN_LOGS,
    AgentCap.ACCEPTS_OPAMP_CONNECTION_SETTINGS,
    AgentCap.ACCEPTS_OTHER_CONNECTION_SETTINGS,
    AgentCap.ACCEPTS_RESTART_COMMAND,
    AgentCap.REPORTS_HEARTBEAT,
]


def required_by_rules(caps: int) -> set[str]:
    """The fields section 2 requires for ``caps`` (ReportsStatus judged separately)."""
    return {"agent_description"} | {f for bit, f in CAP_TO_FIELD.items() if caps & bit}


def partial(seq: int, caps: int = RS) -> AgentToServer:
    """A message that is not full for ``caps`` (no agent_description)."""
    return heartbeat(UID, seq, caps)


def full(seq: int, caps: int = RS) -> AgentToServer:
    return full_status(UID, seq, caps)


def known(last_seq: int, *, said_goodbye: bool = False, awaiting: bool = False) -> AgentHistory:
    return AgentHistory(
        known=True, last_seq=last_seq, said_goodbye=said_goodbye, awaiting_full=awaiting
    )


def judge(history: AgentHistory, msg: AgentToServer) -> tuple[FlagExpectation, str | None]:
    j = expected_report_full_state(history, msg)
    assert isinstance(j, Judgement)
    assert j.reason, "every judgement explains itself"
    return j.expectation, j.rule


# --------------------------------------------------------------------------
# Section 2: is_full_status / missing_status_fields
# --------------------------------------------------------------------------


def test_status_fields_match_section_2() -> None:
    assert set(STATUS_FIELDS) == set(ALL_FIELDS)


def test_reports_status_with_description_only_is_full() -> None:
    msg = partial_status(UID, 1, RS, ["agent_description"])
    assert is_full_status(msg)
    assert missing_status_fields(msg) == []


def test_agent_description_always_required() -> None:
    msg = heartbeat(UID, 1, RS)
    assert not is_full_status(msg)
    assert missing_status_fields(msg) == ["agent_description"]


@pytest.mark.parametrize(("cap", "field"), sorted(CAP_TO_FIELD.items()))
def test_each_capability_requires_its_field(cap: int, field: str) -> None:
    caps = RS | cap
    without = partial_status(UID, 1, caps, ["agent_description"])
    assert not is_full_status(without)
    assert missing_status_fields(without) == [field]
    with_it = partial_status(UID, 1, caps, ["agent_description", field])
    assert is_full_status(with_it)


@pytest.mark.parametrize(("cap", "field"), sorted(CAP_TO_FIELD.items()))
def test_field_not_required_without_its_capability(cap: int, field: str) -> None:
    # Every other reporting capability is declared and satisfied; only ``cap`` is off.
    caps = (RS | sum(CAP_TO_FIELD)) & ~cap
    fields = ["agent_description", *(f for f in CAP_TO_FIELD.values() if f != field)]
    assert is_full_status(partial_status(UID, 1, caps, fields))


def test_health_only_required_with_reports_health() -> None:
    # The seed's draft demanded health always; the spec ties it to ReportsHealth.
    no_health_cap = partial_status(UID, 1, RS, ["agent_description"])
    assert is_full_status(no_health_cap)
    with_health_cap = partial_status(UID, 1, RS | AgentCap.REPORTS_HEALTH, ["agent_description"])
    assert not is_full_status(with_health_cap)
    assert missing_status_fields(with_health_cap) == ["health"]


@pytest.mark.parametrize("cap", NEUTRAL_CAPS)
def test_capabilities_without_a_status_field_add_no_requirement(cap: int) -> None:
    assert is_full_status(partial_status(UID, 1, RS | cap, ["agent_description"]))


def test_zero_capabilities_is_never_full() -> None:
    msg = partial_status(UID, 1, 0, ALL_FIELDS)
    assert not is_full_status(msg)
    assert missing_status_fields(msg) == ["capabilities(ReportsStatus)"]


def test_capabilities_without_reports_status_are_never_full() -> None:
    caps = AgentCap.ALL & ~RS
    msg = partial_status(UID, 1, caps, ALL_FIELDS)
    assert not is_full_status(msg)
    assert missing_status_fields(msg) == ["capabilities(ReportsStatus)"]


def test_all_capabilities_all_fields_is_full() -> None:
    assert is_full_status(partial_status(UID, 1, AgentCap.ALL, ALL_FIELDS))
    assert is_full_status(full_status(UID, 1, AgentCap.ALL))


def test_missing_lists_every_absent_required_field() -> None:
    msg = heartbeat(UID, 1, 0)
    assert set(missing_status_fields(msg)) == {"capabilities(ReportsStatus)", "agent_description"}
    msg = heartbeat(UID, 1, AgentCap.ALL)
    assert set(missing_status_fields(msg)) == set(ALL_FIELDS)


def test_empty_sub_message_counts_as_present() -> None:
    # Presence, not content, is what counts: an empty agent_description is set.
    msg = heartbeat(UID, 1, RS)
    msg.agent_description.SetInParent()
    assert is_full_status(msg)


@given(
    caps=st.integers(min_value=0, max_value=AgentCap.ALL),
    present=st.sets(st.sampled_from(ALL_FIELDS)),
)
def test_full_iff_every_required_field_present(caps: int, present: set[str]) -> None:
    msg = partial_status(UID, 7, caps, sorted(present))
    required = required_by_rules(caps)
    expected = bool(caps & RS) and required <= present
    assert is_full_status(msg) is expected
    missing = set(missing_status_fields(msg))
    assert missing - {"capabilities(ReportsStatus)"} == required - present
    assert ("capabilities(ReportsStatus)" in missing) is (not caps & RS)


@given(caps=st.integers(min_value=0, max_value=AgentCap.ALL))
def test_full_status_builder_is_full_exactly_with_reports_status(caps: int) -> None:
    assert is_full_status(full_status(UID, 1, caps)) is bool(caps & RS)


# --------------------------------------------------------------------------
# Section 3: expected_report_full_state, one test per table row
# --------------------------------------------------------------------------


@pytest.mark.parametrize("first_seq", [0, 1])
def test_unknown_agent_partial_must_set(first_seq: int) -> None:
    assert judge(UNKNOWN, partial(first_seq)) == (FlagExpectation.MUST_SET, "SRV-FS-NEW")


@pytest.mark.parametrize("first_seq", [0, 1, 12345])
def test_unknown_agent_full_should_not_set(first_seq: int) -> None:
    assert judge(UNKNOWN, full(first_seq)) == (
        FlagExpectation.SHOULD_NOT_SET,
        "SRV-FS-QUIET-FULL",
    )


def test_known_contiguous_partial_should_not_set() -> None:
    assert judge(known(4), partial(5)) == (FlagExpectation.SHOULD_NOT_SET, "SRV-FS-QUIET")


def test_known_contiguous_from_zero() -> None:
    assert judge(known(0), partial(1)) == (FlagExpectation.SHOULD_NOT_SET, "SRV-FS-QUIET")


@pytest.mark.parametrize(
    ("last", "seq"),
    [
        pytest.param(4, 6, id="forward-gap"),
        pytest.param(4, 100, id="big-forward-gap"),
        pytest.param(4, 4, id="duplicate"),
        pytest.param(4, 2, id="backwards"),
        pytest.param(4, 0, id="reset-to-0"),
        pytest.param(0, 0, id="duplicate-of-0"),
    ],
)
def test_known_non_contiguous_partial_must_set(last: int, seq: int) -> None:
    expectation, rule = judge(known(last), partial(seq))
    assert (expectation, rule) == (FlagExpectation.MUST_SET, "SRV-FS-GAP")
    reason = expected_report_full_state(known(last), partial(seq)).reason
    assert str(seq) in reason and str(last) in reason


def test_gap_judged_capability_aware() -> None:
    # SRV-FS-CAPS: a message lacking a field its capabilities declare is partial,
    # so a gap still demands the flag.
    caps = RS | AgentCap.REPORTS_EFFECTIVE_CONFIG
    msg = partial_status(UID, 9, caps, ["agent_description"])
    assert judge(known(4), msg) == (FlagExpectation.MUST_SET, "SRV-FS-GAP")


def test_gap_with_full_status_is_quiet() -> None:
    assert judge(known(4), full(9)) == (FlagExpectation.SHOULD_NOT_SET, "SRV-FS-QUIET-FULL")


def test_goodbye_then_seq_0_partial_must_set() -> None:
    assert judge(known(7, said_goodbye=True), partial(0)) == (
        FlagExpectation.MUST_SET,
        "SRV-FS-RECONNECT",
    )


def test_goodbye_then_contiguous_partial_may() -> None:
    assert judge(known(7, said_goodbye=True), partial(8)) == (FlagExpectation.MAY, None)


def test_goodbye_then_gap_partial_must_set() -> None:
    assert judge(known(7, said_goodbye=True), partial(12)) == (
        FlagExpectation.MUST_SET,
        "SRV-FS-GAP",
    )


@pytest.mark.parametrize(
    "history",
    [
        pytest.param(UNKNOWN, id="unknown"),
        pytest.param(known(4), id="known"),
        pytest.param(known(4, said_goodbye=True), id="after-goodbye"),
        pytest.param(known(4, awaiting=True), id="awaiting-full"),
    ],
)
@pytest.mark.parametrize("seq", [0, 4, 5, 9])
def test_full_message_any_history_should_not_set(history: AgentHistory, seq: int) -> None:
    assert judge(history, full(seq)) == (FlagExpectation.SHOULD_NOT_SET, "SRV-FS-QUIET-FULL")


@pytest.mark.parametrize(
    "history",
    [
        pytest.param(UNKNOWN, id="unknown"),
        pytest.param(known(4), id="known"),
        pytest.param(known(4, said_goodbye=True), id="after-goodbye"),
    ],
)
@pytest.mark.parametrize("seq", [0, 5, 9])
def test_reply_to_goodbye_may(history: AgentHistory, seq: int) -> None:
    assert judge(history, goodbye(UID, seq)) == (FlagExpectation.MAY, None)


def test_reply_to_full_goodbye_may() -> None:
    msg = full(5)
    msg.agent_disconnect.SetInParent()
    assert judge(known(4), msg) == (FlagExpectation.MAY, None)


def test_awaiting_full_contiguous_partial_may() -> None:
    assert judge(known(4, awaiting=True), partial(5)) == (FlagExpectation.MAY, None)


def test_awaiting_full_gap_still_must_set() -> None:
    assert judge(known(4, awaiting=True), partial(7)) == (FlagExpectation.MUST_SET, "SRV-FS-GAP")


def test_flagged_reply_then_partial_contiguous_may() -> None:
    history = next_history(UNKNOWN, partial(1), flag_sent=True)
    assert history.awaiting_full
    assert judge(history, partial(2)) == (FlagExpectation.MAY, None)


def test_after_full_delivered_awaiting_is_cleared() -> None:
    history = next_history(UNKNOWN, partial(1), flag_sent=True)
    history = next_history(history, full(2), flag_sent=False)
    assert not history.awaiting_full
    assert judge(history, partial(3)) == (FlagExpectation.SHOULD_NOT_SET, "SRV-FS-QUIET")


def _reference_expectation(history: AgentHistory, msg: AgentToServer) -> FlagExpectation:
    """Section 3 restated as one expression, to cross-check the oracle."""
    if msg.HasField("agent_disconnect"):
        return FlagExpectation.MAY
    if is_full_status(msg):
        return FlagExpectation.SHOULD_NOT_SET
    seq = msg.sequence_num
    must = not history.known or seq != history.last_seq + 1 or (history.said_goodbye and seq == 0)
    if must:
        return FlagExpectation.MUST_SET
    if history.said_goodbye or history.awaiting_full:
        return FlagExpectation.MAY
    return FlagExpectation.SHOULD_NOT_SET


@given(
    history=st.builds(
        AgentHistory,
        known=st.booleans(),
        last_seq=st.integers(min_value=0, max_value=20),
        said_goodbye=st.booleans(),
        awaiting_full=st.booleans(),
    ),
    seq=st.integers(min_value=0, max_value=22),
    caps=st.integers(min_value=0, max_value=AgentCap.ALL),
    present=st.sets(st.sampled_from(ALL_FIELDS)),
    disconnect=st.booleans(),
)
def test_oracle_matches_table(
    history: AgentHistory, seq: int, caps: int, present: set[str], disconnect: bool
) -> None:
    msg = partial_status(UID, seq, caps, sorted(present))
    if disconnect:
        msg.agent_disconnect.SetInParent()
    judgement = expected_report_full_state(history, msg)
    assert judgement.expectation is _reference_expectation(history, msg)
    assert (judgement.rule is None) is (judgement.expectation is FlagExpectation.MAY)


# --------------------------------------------------------------------------
# next_history
# --------------------------------------------------------------------------


def test_next_history_learns_the_agent() -> None:
    after = next_history(UNKNOWN, partial(3), flag_sent=True)
    assert after == AgentHistory(known=True, last_seq=3, said_goodbye=False, awaiting_full=True)
    assert AgentHistory() == UNKNOWN  # the input is not mutated


def test_next_history_full_first_message_not_awaiting() -> None:
    after = next_history(UNKNOWN, full(0), flag_sent=False)
    assert after == AgentHistory(known=True, last_seq=0, said_goodbye=False, awaiting_full=False)


def test_next_history_records_goodbye() -> None:
    after = next_history(known(4), goodbye(UID, 5), flag_sent=False)
    assert after.said_goodbye
    assert after.last_seq == 5
    assert after.known


def test_next_history_goodbye_forgotten_on_next_message() -> None:
    after = next_history(known(5, said_goodbye=True), full(0), flag_sent=False)
    assert not after.said_goodbye
    assert after.last_seq == 0


def test_next_history_follows_backwards_sequence() -> None:
    after = next_history(known(9), partial(2), flag_sent=True)
    assert after.last_seq == 2


@pytest.mark.parametrize(
    ("awaiting", "flag_sent", "msg_full", "expected"),
    [
        (False, False, False, False),
        (False, True, False, True),
        (False, True, True, False),
        (True, False, False, True),
        (True, True, False, True),
        (True, False, True, False),
        (True, True, True, False),
        (False, False, True, False),
    ],
)
def test_next_history_awaiting_full(
    awaiting: bool, flag_sent: bool, msg_full: bool, expected: bool
) -> None:
    msg = full(5) if msg_full else partial(5)
    after = next_history(known(4, awaiting=awaiting), msg, flag_sent)
    assert after.awaiting_full is expected


def test_conversation_walkthrough() -> None:
    """A whole exchange: new agent, flagged, full, quiet, goodbye, reconnect."""
    steps: list[tuple[AgentToServer, bool, FlagExpectation]] = [
        (partial(0), True, FlagExpectation.MUST_SET),  # unknown agent
        (partial(1), True, FlagExpectation.MAY),  # still awaiting full
        (full(2), False, FlagExpectation.SHOULD_NOT_SET),  # full delivered
        (partial(3), False, FlagExpectation.SHOULD_NOT_SET),  # quiet
        (partial(5), True, FlagExpectation.MUST_SET),  # gap
        (full(6), False, FlagExpectation.SHOULD_NOT_SET),
        (goodbye(UID, 7), False, FlagExpectation.MAY),  # goodbye
        (partial(0), True, FlagExpectation.MUST_SET),  # reconnect at 0
    ]
    history = UNKNOWN
    for msg, flag, expected in steps:
        assert expected_report_full_state(history, msg).expectation is expected
        history = next_history(history, msg, flag)
    assert history.awaiting_full


# --------------------------------------------------------------------------
# FlagExpectation
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expectation", "flag_set", "allows", "preferred"),
    [
        (FlagExpectation.MUST_SET, True, True, True),
        (FlagExpectation.MUST_SET, False, False, False),
        (FlagExpectation.SHOULD_NOT_SET, True, True, False),
        (FlagExpectation.SHOULD_NOT_SET, False, True, True),
        (FlagExpectation.MAY, True, True, True),
        (FlagExpectation.MAY, False, True, True),
    ],
)
def test_flag_expectation_truth_table(
    expectation: FlagExpectation, flag_set: bool, allows: bool, preferred: bool
) -> None:
    assert expectation.allows(flag_set) is allows
    assert expectation.preferred(flag_set) is preferred


@pytest.mark.parametrize("expectation", list(FlagExpectation))
@pytest.mark.parametrize("flag_set", [True, False])
def test_preferred_implies_allowed(expectation: FlagExpectation, flag_set: bool) -> None:
    if expectation.preferred(flag_set):
        assert expectation.allows(flag_set)
