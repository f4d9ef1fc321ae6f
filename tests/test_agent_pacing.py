"""Agents on their own clock: window sizing, the heartbeat offer, and what cannot fit.

Pure sizing functions (``conformance/model/agent_timing.py``), the clock
helpers of ``conformance/model/opamp_agent.py``, the mock's heartbeat offer,
``conformance/agent/pacing.py`` on stand-in scenarios, and real runs of
the suite: the *not judged* paths end with a remedy naming a window, a late
start or a late-applied heartbeat offer is judged, not passed or failed
unwatched.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from conformance.agent import reference
from conformance.agent.launch import AgentCommand
from conformance.agent.mock_opamp import MockOpAMP
from conformance.agent.opamp_scenario import OpAMPScenario
from conformance.agent.pacing import (
    OFFER,
    Clock,
    side_by_side,
    upfront,
    wait_sized,
)
from conformance.agent.scenario import AgentSetup
from conformance.messages import full_status, heartbeat, new_uid
from conformance.model.agent_timing import (
    SPEC_POLL,
    START_ALLOWANCE,
    Timing,
    describe_clock,
    retry_waits,
    window_needed,
    window_remedy,
)
from conformance.model.opamp_agent import (
    ACK,
    HEARTBEAT_CAPS,
    Received,
    Reply,
    offered_heartbeat,
    poll_gaps,
    takes_heartbeat_offer,
)
from conformance.outcomes import (
    NotApplicable,
    NotJudged,
    not_applicable,
    not_judged,
    out_of_scope,
)
from conformance.verdicts import Violation, Violations
from conformance.wire import (
    CONTENT_TYPE,
    AgentCap,
    AgentToServer,
    ServerFlag,
    ServerToAgent,
    parse_server_to_agent,
)
from tests.suite_runner import run_suite

SPEC = Timing(floor=30.0, cap=120.0)
SCALED = Timing(floor=0.25, cap=1.0)


# -- sizing (pure) -------------------------------------------------------------------


def test_retry_waits_double_from_twice_the_floor_up_to_the_longest() -> None:
    assert retry_waits(SPEC, 4) == [60.0, 120.0, 180.0, 180.0]
    assert retry_waits(SCALED, 2) == [0.5, 1.0]
    # A measured first retry replaces twice the floor.
    assert retry_waits(SPEC, 2, first=31.0) == [31.0, 62.0]
    assert retry_waits(SPEC, 0) == []


def test_window_needed_adds_the_tolerance_to_each_wait() -> None:
    assert window_needed(SPEC) == START_ALLOWANCE
    assert window_needed(SPEC, polls=2, period=30.0) == pytest.approx(2 + 2 * 36.1)
    assert window_needed(SPEC, waits=(60.0,)) == pytest.approx(2 + 72.1)
    # The spec's timing: a throttling reply asking for 60 s does not fit 30 s.
    assert window_needed(SPEC, waits=(60.0,)) > 30


def test_window_remedy_names_the_option_rounded_up() -> None:
    assert window_remedy(74.1) == "--agent-window=75"
    assert window_remedy(75.0) == "--agent-window=75"
    assert window_remedy(0.3) == "--agent-window=5"


def test_describe_clock_says_how_the_period_is_known() -> None:
    assert f"spec's {SPEC_POLL:g} s" in describe_clock(None, False)
    assert "measured" in describe_clock(4.0, False)
    assert "accepted" in describe_clock(1.0, True)


# -- the clock in the records (pure) ----------------------------------------------------


def rec(
    msg: AgentToServer, at: float, reply: Reply = ACK, sent: ServerToAgent | None = None
) -> Received:
    if sent is None:
        sent = ServerToAgent(instance_uid=msg.instance_uid)
    return Received(at, "http", 0, (), msg, "", reply, 1, msg.SerializeToString(), sent)


def test_poll_gaps_follow_replies_that_ask_for_nothing() -> None:
    uid = new_uid()
    seen = [
        rec(full_status(uid, 0), 0.0, Reply("full")),
        rec(full_status(uid, 1), 0.1, ACK),
        rec(heartbeat(uid, 2), 30.1, Reply("500"), sent=None),
        rec(heartbeat(uid, 3), 75.0, Reply("new-uid")),
        rec(heartbeat(uid, 4), 105.0),
    ]
    # The flag's immediate answer and the retry after the failure are no poll periods.
    assert poll_gaps(seen) == pytest.approx([30.0, 30.0])


def test_heartbeat_offer_is_read_from_the_reply_sent() -> None:
    uid = new_uid()
    offer = ServerToAgent(instance_uid=uid)
    offer.connection_settings.opamp.heartbeat_interval_seconds = 1
    assert offered_heartbeat(rec(heartbeat(uid, 0), 0.0, sent=offer)) == 1
    assert offered_heartbeat(rec(heartbeat(uid, 0), 0.0)) is None
    assert takes_heartbeat_offer(AgentCap.REPORTS_STATUS | HEARTBEAT_CAPS)
    assert not takes_heartbeat_offer(AgentCap.REPORTS_STATUS | AgentCap.REPORTS_HEARTBEAT)


# -- the mock's heartbeat offer over plain HTTP ------------------------------------------


def post(mock: MockOpAMP, msg: AgentToServer) -> ServerToAgent:
    response = httpx.post(
        mock.url,
        content=msg.SerializeToString(),
        headers={"Content-Type": CONTENT_TYPE},
        timeout=5,
    )
    return parse_server_to_agent(response.content)


def test_http_heartbeat_is_offered_on_the_first_reply_only_to_agents_taking_it() -> None:
    uid = new_uid()
    taking = AgentCap.REPORTS_STATUS | HEARTBEAT_CAPS
    with MockOpAMP(http_heartbeat=OFFER) as mock:
        mock.plan([Reply("full"), Reply("full")])
        first = post(mock, full_status(uid, 0, taking))
        second = post(mock, full_status(uid, 1, taking))
        seen = mock.received()
    # Beside the flag on the first reply, and only there.
    assert first.flags & ServerFlag.REPORT_FULL_STATE
    assert first.connection_settings.opamp.heartbeat_interval_seconds == OFFER
    assert first.connection_settings.opamp.destination_endpoint == mock.url
    assert not second.HasField("connection_settings")
    assert [r.reply.kind for r in seen] == ["full", "full"]
    assert offered_heartbeat(seen[0]) == OFFER

    with MockOpAMP(http_heartbeat=OFFER) as mock:
        plain = post(mock, full_status(uid, 0, taking))
        assert mock.received()[0].reply == Reply("heartbeat", OFFER)
    assert plain.connection_settings.opamp.heartbeat_interval_seconds == OFFER

    with MockOpAMP(http_heartbeat=OFFER) as mock:
        mock.plan([Reply("full")])
        refused = post(mock, full_status(uid, 0, AgentCap.REPORTS_STATUS))
    assert refused.flags & ServerFlag.REPORT_FULL_STATE
    assert not refused.HasField("connection_settings")


# -- pacing on stand-in scenarios -----------------------------------------------------------


def setup_for(window: float, timing: Timing = SPEC) -> AgentSetup:
    return AgentSetup(AgentCommand.parse("true", []), timing, window, 0.5, 5.0)


@dataclass
class FakeAgent:
    alive: bool = True

    def running(self) -> bool:
        return self.alive


@dataclass
class FakeScenario:
    """What :func:`wait_sized` reads of a scenario: the messages, the agent, the deadline."""

    seen: list[Received]
    deadline: float
    agent: FakeAgent = field(default_factory=FakeAgent)

    def messages(self) -> list[Received]:
        return list(self.seen)


def scenario(seen: list[Received], window: float) -> OpAMPScenario:
    return cast(OpAMPScenario, FakeScenario(seen, time.monotonic() + window))


def test_wait_sized_stops_at_once_when_the_measured_period_cannot_fit() -> None:
    uid = new_uid()
    seen = [rec(full_status(uid, 0), 0.0), rec(heartbeat(uid, 1), 4.0)]
    setup = setup_for(6.0, SCALED)
    started = time.monotonic()
    got, short = wait_sized(setup, scenario(seen, 60.0), 5, polls=4, what="answer the plan")
    assert time.monotonic() - started < 5, "the shortfall is known without waiting"
    assert got == seen and short is not None
    need = window_needed(SCALED, polls=4, period=4.0)
    assert short.remedy == window_remedy(need) and short.need == pytest.approx(need)
    assert "measured" in short.reason and "--agent-window is 6 s" in short.reason
    with pytest.raises(NotJudged) as caught:
        short.raise_()
    assert caught.value.remedy == window_remedy(need)


def test_wait_sized_returns_without_shortfall_once_the_messages_came() -> None:
    uid = new_uid()
    seen = [rec(full_status(uid, 0), 0.0), rec(heartbeat(uid, 1), 0.2)]
    got, short = wait_sized(setup_for(30.0), scenario(seen, 30.0), 2, polls=1, what="x")
    assert got == seen and short is None


def test_wait_sized_assumes_the_spec_period_when_nothing_was_measured() -> None:
    uid = new_uid()
    seen = [rec(full_status(uid, 0), 0.0)]
    setup = setup_for(0.3)
    _, short = wait_sized(setup, scenario(seen, 0.3), 3, polls=2, what="x")
    assert short is not None and "was not measured" in short.reason
    assert short.remedy == window_remedy(0.3 + window_needed(SPEC, polls=2, period=SPEC_POLL))


def test_upfront_is_not_judged_with_the_window_needed() -> None:
    upfront(setup_for(30.0), "AGT-RETRY-AFTER", "fits", 29.0)
    with pytest.raises(NotJudged) as caught:
        upfront(setup_for(30.0), "AGT-RETRY-AFTER", "a 60 s Retry-After", 74.1)
    assert caught.value.remedy == "--agent-window=75"
    assert "AGT-RETRY-AFTER needs about 74 s" in caught.value.reason


def test_side_by_side_runs_at_once_and_reports_every_violation() -> None:
    def slow(value: int) -> int:
        time.sleep(0.3)
        return value

    started = time.monotonic()
    assert side_by_side([lambda: slow(1), lambda: slow(2)], timeout=10) == [1, 2]
    assert time.monotonic() - started < 0.55, "the two ran at once"

    def broken(which: str) -> None:
        raise Violation("AGT-RETRY-AFTER", which)

    with pytest.raises(Violations) as caught:
        side_by_side([lambda: broken("a"), lambda: broken("b")], timeout=10)
    assert [v.message for v in caught.value.items] == ["a", "b"]

    def unjudged() -> None:
        not_judged("too slow", "--agent-window=75")

    # A violation outweighs a not judged; not judged outweighs a pass.
    with pytest.raises(Violation):
        side_by_side([unjudged, lambda: broken("a")], timeout=10)
    with pytest.raises(NotJudged):
        side_by_side([unjudged, lambda: slow(1)], timeout=10)


def test_side_by_side_raises_findings_before_anything_that_did_not_judge() -> None:
    def broken() -> None:
        raise Violation("AGT-RETRY-AFTER", "retried at once")

    def harness() -> None:
        raise RuntimeError("the harness broke")

    def lacking() -> None:
        not_applicable("a WebSocket rule", "the agent speaks plain HTTP")

    def unjudged() -> None:
        not_judged("too slow", "--agent-window=75")

    # A finding outranks a harness error, not applicable and out of scope, in any order.
    for other in (harness, lacking, lambda: out_of_scope("no agent")):
        with pytest.raises(Violation):
            side_by_side([other, broken], timeout=10)
    # Then the plugin's order of weight: error, not judged, not applicable.
    with pytest.raises(RuntimeError):
        side_by_side([unjudged, harness], timeout=10)
    with pytest.raises(NotJudged):
        side_by_side([lacking, unjudged], timeout=10)
    with pytest.raises(NotApplicable):
        side_by_side([lacking, lambda: None], timeout=10)


def test_side_by_side_does_not_wait_past_its_bound() -> None:
    """A scenario still running at the bound: the call raises without waiting for it (the
    scenario is released only afterwards, and had not finished when the call returned)."""
    release = threading.Event()
    finished = threading.Event()

    def stuck() -> None:
        release.wait(timeout=30)
        finished.set()

    def broken() -> None:
        raise Violation("AGT-RETRY-AFTER", "retried at once")

    try:
        with pytest.raises(TimeoutError):
            side_by_side([stuck], timeout=0.2)
        assert not finished.is_set(), "side_by_side waited for the scenario past its bound"
        # A finding of a scenario that did end still outranks the timeout.
        with pytest.raises(Violation):
            side_by_side([stuck, broken], timeout=0.2)
        assert not finished.is_set()
    finally:
        release.set()
    assert finished.wait(timeout=30), "the scenario thread ends on its own once released"


def test_clock_knows_when_an_agent_takes_offers() -> None:
    assert not Clock().takes_offer
    assert Clock(capabilities=AgentCap.REPORTS_STATUS | HEARTBEAT_CAPS).takes_offer


# -- real runs of the suite ----------------------------------------------------------------


def verdicts(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in report["requirements"]}


def window_of(remedy: str) -> int:
    found = re.fullmatch(r"--agent-window=(\d+)", remedy)
    assert found is not None, remedy
    return int(found.group(1))


def test_an_agent_too_slow_for_the_window_is_incomplete_with_the_window_it_needs(
    tmp_path: Path,
) -> None:
    """An agent that takes no heartbeat offer and polls every 3 s, under a 5 s window: the
    per-message rules need several polls, so they are not judged, with a window computed
    from the poll period; the heartbeat rule does not apply to it."""
    args = reference.opamp_suite_args("takes-no-offer", poll=3.0)
    run = run_suite(
        [
            *args,
            "--agent-window=5",
            "--requirement=AGT-SEQ",
            "--requirement=AGT-HEARTBEAT",
            "--requirement=AGT-ONE-INFLIGHT",
            "-q",
        ],
        tmp_path,
    )
    assert run.report is not None, run.output
    by_id = verdicts(run.report)
    assert run.report["certification"]["verdict"] == "INCOMPLETE", run.output
    seq = by_id["AGT-SEQ"]
    # The generated conversation decides: one whose replies ask for no poll (a single
    # reply) fits the window and is judged; a longer one needs several polls.
    assert seq["verdict"] in ("not judged", "pass"), run.output
    if seq["verdict"] == "not judged":
        # At least two 3 s polls at 20 % tolerance: more than the 5 s given.
        assert window_of(seq["remedy"]) >= 10, seq
        assert "poll period" in seq["reason"], seq
    # The flag's immediate second request alone is too thin for AGT-ONE-INFLIGHT: only
    # one held reply had a chance to be overlapped.
    inflight = by_id["AGT-ONE-INFLIGHT"]
    assert inflight["verdict"] == "not judged", run.output
    assert window_of(inflight["remedy"]) >= 10, inflight
    heartbeat_rule = by_id["AGT-HEARTBEAT"]
    assert heartbeat_rule["verdict"] == "not applicable", run.output
    evidence = heartbeat_rule["evidence"][0]["evidence"]
    assert "plain HTTP" in evidence and "capabilities" in evidence
    assert run.returncode == 0, run.output  # INCOMPLETE is exit 0 without --certify


def test_an_agent_starting_after_the_window_is_still_watched_for_a_loop(
    tmp_path: Path,
) -> None:
    """An agent that loops on plain acks and first speaks 6 s after its launch, under a 5 s
    window: AGT-NO-LOOP watches it from the first ack (not up to the window's end, which
    has passed), so the loop is found."""
    args = reference.opamp_suite_args("loops-on-ack")
    args[0] += " --start-delay 6"
    run = run_suite([*args, "--agent-window=5", "--requirement=AGT-NO-LOOP", "-q"], tmp_path)
    assert run.report is not None, run.output
    assert verdicts(run.report)["AGT-NO-LOOP"]["verdict"] == "fail", run.output


def test_an_agent_applying_the_heartbeat_offer_at_its_next_poll_passes(tmp_path: Path) -> None:
    """An agent polling every 16 s that applies the offered 2 s heartbeat interval only
    from its next message on (the spec lets it apply new connection settings at its next
    opportunity) is not failed for the silence before that message."""
    args = reference.opamp_suite_args("applies-offer-late", poll=16.0)
    run = run_suite([*args, "--requirement=AGT-HEARTBEAT", "-q"], tmp_path)
    assert run.report is not None, run.output
    entry = verdicts(run.report)["AGT-HEARTBEAT"]
    assert entry["verdict"] == "pass", run.output


def test_the_spec_timing_judges_every_must_and_sizes_the_rest(tmp_path: Path) -> None:
    """The reference OpAMP agent at 30 s poll and 30 s floor under the quick profile: the
    MUST rules are judged (CERTIFIED), the retry rules are not judged with a window."""
    args = reference.opamp_suite_args(
        poll=reference.SPEC_POLL, backoff_scale=reference.SPEC_BACKOFF_SCALE
    )
    run = run_suite([*args, "-n", "2", "-q"], tmp_path)
    assert run.report is not None, run.output
    by_id = verdicts(run.report)
    assert run.report["certification"]["verdict"] == "CERTIFIED", run.output
    assert by_id["AGT-DISCONNECT"]["verdict"] == "not applicable", run.output
    for rid in ("AGT-RETRY-AFTER", "AGT-RETRY-MIN", "AGT-BACKOFF", "AGT-ROBUST"):
        assert by_id[rid]["verdict"] == "not judged", (rid, run.output)
        assert window_of(by_id[rid]["remedy"]) > 30, by_id[rid]
    for rid, entry in by_id.items():
        if rid.startswith("AGT-") and entry["level"] == "MUST" and rid != "AGT-DISCONNECT":
            assert entry["verdict"] == "pass", (rid, entry)


def test_a_fleet_agent_too_slow_for_the_window_is_not_judged_with_a_window(
    tmp_path: Path,
) -> None:
    """The reference Fleet agent under a 1 s window: the backoff rules cannot see enough
    retries, so each is not judged with the window its bounds call for."""
    run = run_suite(
        [
            *reference.suite_args(),
            "--agent-window=1",
            "--requirement=FLEET-AGT-ENROLL-401",
            "--requirement=FLEET-AGT-CHECKIN-401",
            "--requirement=FLEET-AGT-LIVENESS",
            "-q",
        ],
        tmp_path,
    )
    assert run.report is not None, run.output
    by_id = verdicts(run.report)
    for rid in ("FLEET-AGT-ENROLL-401", "FLEET-AGT-CHECKIN-401", "FLEET-AGT-LIVENESS"):
        entry = by_id[rid]
        assert entry["verdict"] == "not judged", (rid, run.output)
        assert window_of(entry["remedy"]) > 1, entry
    assert run.report["certification"]["verdict"] == "INCOMPLETE", run.output
