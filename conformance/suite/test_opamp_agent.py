"""OpAMP agents under test: the suite plays the OpAMP server (rules section 5, AGT-*).

Each scenario launches one agent through ``--agent-cmd`` (with
``--agent-protocol`` opamp or both) against a fresh mock OpAMP server whose
replies follow a generated plan, and judges every message it receives with
``conformance/model/opamp_agent.py``. Waits are bounded by ``--agent-window``
and ``--agent-start-timeout``; a rule the agent never gave a chance to judge
is a skip with the reason, not a pass.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable
from typing import NoReturn

import pytest
from hypothesis import strategies as st

from conformance.agent.opamp_scenario import OpAMPScenario, running_opamp_agent
from conformance.agent.scenario import AgentSetup
from conformance.model.agent_timing import (
    GROWTH_INTERVALS,
    JITTER_INTERVALS,
    fmt,
    intervals,
    not_growing_from_first,
    same_schedule,
)
from conformance.model.opamp_agent import (
    ACK,
    Received,
    Reply,
    check_capabilities,
    check_content_type,
    check_first_full,
    check_full_on_flag,
    check_heartbeat,
    check_new_uid,
    check_one_in_flight,
    check_sequence,
    check_uid,
    check_uid_header,
    quick_resends,
    repeats,
    unanswered,
)
from conformance.profiles import active
from conformance.properties import conformance_property
from conformance.verdicts import Findings, Violation
from conformance.wire import AgentCap

FULL = Reply("full")
NEW_UID = Reply("new-uid")
FAILED = Reply("500")
#: Offered to WebSocket agents on connecting, so that an idle connection keeps talking.
WS_HEARTBEAT = 1
#: The heartbeat interval AGT-HEARTBEAT offers, in seconds.
OFFERED_HEARTBEAT = 2
#: A message sent sooner than this after a plain ack counts as a resend in a loop ...
LOOP_GAP = 0.1
#: ... and this many in a row are a loop.
LOOP_RUN = 10
#: How long AGT-NO-LOOP watches an agent answered with plain acks only.
LOOP_WATCH = 2.0
#: How long a stopped agent has to say goodbye and exit.
STOP_GRACE = 10.0

#: The transport each agent under test was seen to use ("http" or "ws"), by setup.
_TRANSPORTS: dict[int, str] = {}


def _remember(setup: AgentSetup, sc: OpAMPScenario) -> str:
    seen = sc.messages()
    if seen:
        _TRANSPORTS[id(setup)] = seen[0].transport
    elif sc.mock.attempts():
        _TRANSPORTS[id(setup)] = "ws"
    return _TRANSPORTS.get(id(setup), "http")


def _not_judged(what: str, setup: AgentSetup) -> NoReturn:
    pytest.skip(f"not judged: the agent did not {what} within --agent-window ({setup.window:g} s)")


@st.composite
def conversation_plans(draw: st.DrawFn) -> list[Reply]:
    """Replies that always ask for full state and assign a new uid, in a drawn order mixed
    with drawn extra acks, flags and uids, then fail once (HTTP 500, or a closed
    WebSocket): last, so that an agent backing off long after it has been judged on the
    rest; the message after it shows how the agent retries."""
    extra = draw(st.lists(st.sampled_from([ACK, FULL, NEW_UID]), max_size=3))
    return [*draw(st.permutations([FULL, NEW_UID, ACK, *extra])), FAILED]


@pytest.mark.requirement(
    "AGT-FIRST-FULL", "AGT-SEQ", "AGT-FULL-ON-FLAG", "AGT-UID", "AGT-NEW-UID", "AGT-CAPS"
)
def test_messages_follow_the_model(opamp_agent_setup: AgentSetup) -> None:
    """Every message of a generated conversation is judged by the per-message rules."""
    setup = opamp_agent_setup

    @conformance_property(max_examples=active().agent_examples, plan=conversation_plans())
    def run(plan: list[Reply]) -> None:
        with running_opamp_agent(setup, replies=plan, ws_heartbeat=WS_HEARTBEAT) as sc:
            seen = sc.wait(len(plan) + 1)
            _remember(setup, sc)
            judge_messages(sc, seen)
            left = unanswered(seen, frozenset({"full", "new-uid"}))
            if left:
                _not_judged(f"send a message after the replies {', '.join(left)}", setup)

    run()


def judge_messages(sc: OpAMPScenario, seen: list[Received]) -> None:
    findings = Findings()
    checks: tuple[tuple[str, Callable[[list[Received]], str | None]], ...] = (
        ("AGT-FIRST-FULL", check_first_full),
        ("AGT-SEQ", check_sequence),
        ("AGT-FULL-ON-FLAG", check_full_on_flag),
        ("AGT-UID", check_uid),
        ("AGT-NEW-UID", check_new_uid),
        ("AGT-CAPS", check_capabilities),
    )
    for req_id, check in checks:
        problem = check(seen)
        if problem is not None:
            findings.add(req_id, problem, sc.transcript())
    findings.raise_if_any()


@pytest.mark.requirement("AGT-CT", "AGT-UID-HEADER", "AGT-ONE-INFLIGHT")
def test_http_requests_are_well_formed(opamp_agent_setup: AgentSetup) -> None:
    """Plain-HTTP headers, and one request at a time while replies are slow (held 0.3 s)."""
    setup = opamp_agent_setup
    plan = [ACK, FULL, ACK, ACK]
    with running_opamp_agent(setup, replies=plan, hold=0.3, ws_heartbeat=WS_HEARTBEAT) as sc:
        seen = sc.wait(len(plan) + 1)
        if _remember(setup, sc) != "http":
            pytest.skip("not applicable: the agent speaks WebSocket, not plain HTTP")
    findings = Findings()
    for req_id, check in (
        ("AGT-CT", check_content_type),
        ("AGT-UID-HEADER", check_uid_header),
        ("AGT-ONE-INFLIGHT", check_one_in_flight),
    ):
        problem = check(seen)
        if problem is not None:
            findings.add(req_id, problem, sc.transcript())
    findings.raise_if_any()


@pytest.mark.requirement("AGT-NO-LOOP")
def test_plain_ack_does_not_make_the_agent_loop(opamp_agent_setup: AgentSetup) -> None:
    setup = opamp_agent_setup
    with running_opamp_agent(setup) as sc:
        until = time.monotonic() + LOOP_WATCH
        seen = sc.wait(5 * LOOP_RUN, until=until)
        _remember(setup, sc)
        run = quick_resends(seen, LOOP_GAP)
        if run >= LOOP_RUN:
            span = seen[-1].at - seen[0].at
            raise Violation(
                "AGT-NO-LOOP",
                f"{len(seen)} messages in {span:.2f} s answered with plain acks only; {run} in a"
                f" row came less than {LOOP_GAP:g} s after the ack",
                sc.transcript(),
            )


@pytest.mark.requirement("AGT-HEARTBEAT")
def test_offered_heartbeat_interval_is_used(opamp_agent_setup: AgentSetup) -> None:
    setup = opamp_agent_setup
    every = OFFERED_HEARTBEAT
    with running_opamp_agent(setup, replies=[Reply("heartbeat", every)]) as sc:
        first = sc.wait(1)
        _remember(setup, sc)
        if not first or first[0].message is None:
            _not_judged("send a decodable first message", setup)
        wanted = AgentCap.REPORTS_HEARTBEAT | AgentCap.ACCEPTS_OPAMP_CONNECTION_SETTINGS
        if first[0].message.capabilities & wanted != wanted:
            pytest.skip(
                "not applicable: the interval is offered in OpAMP connection settings, to an"
                " agent declaring ReportsHeartbeat and AcceptsOpAMPConnectionSettings"
                f" (this one: {first[0].message.capabilities:#x})"
            )
        # The message right after the offer may have been scheduled before it: the
        # intervals are judged from that one on.
        latest = 1.5 * every + 0.5
        want = 4
        seen = sc.wait(want, until=first[0].at + latest * want)
        gaps = intervals([r.at for r in seen[1:]])
        if len(seen) < want:
            silence = time.monotonic() - seen[-1].at
            if not sc.agent.running() or silence < latest:
                _not_judged(f"send {want} messages", setup)
            raise Violation(
                "AGT-HEARTBEAT",
                f"offered heartbeat_interval_seconds={every}; no message for {silence:.1f} s"
                f" after seq {seen[-1].message.sequence_num if seen[-1].message else '?'}",
                sc.transcript(),
            )
        soonest = setup.timing.at_least(every)
        problem = check_heartbeat(seen[1:], soonest, latest)
        if problem is not None:
            raise Violation(
                "AGT-HEARTBEAT",
                f"offered heartbeat_interval_seconds={every}: {problem}; the intervals after"
                f" it were {fmt(gaps)}",
                sc.transcript(),
            )


def _stop_and_judge(setup: AgentSetup, signum: signal.Signals, req_id: str, wanted: str) -> None:
    known = _TRANSPORTS.get(id(setup))
    if known is not None and known != wanted:
        pytest.skip(f"not applicable: the agent speaks {known}, this rule is for {wanted}")
    with running_opamp_agent(setup, ws_heartbeat=WS_HEARTBEAT) as sc:
        seen = sc.wait(2)
        transport = _remember(setup, sc)
        if transport != wanted:
            pytest.skip(f"not applicable: the agent speaks {transport}, this rule is for {wanted}")
        if len(seen) < 2:
            _not_judged("send two messages", setup)
        exited = sc.stop_with(signum, STOP_GRACE)
        time.sleep(0.1)  # the last bytes may still be in the mock's hands
        seen = sc.messages()
        last = seen[-1].message
        if last is None or not last.HasField("agent_disconnect"):
            if not exited:
                _not_judged(f"exit within {STOP_GRACE:g} s of {signum.name}", setup)
            raise Violation(
                req_id,
                f"after {signum.name} the agent exited; its last message"
                f" ({seen[-1].describe()}) carries no agent_disconnect",
                sc.transcript(),
            )


@pytest.mark.requirement("AGT-DISCONNECT")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_websocket_agent_says_goodbye(
    opamp_agent_setup: AgentSetup, signum: signal.Signals
) -> None:
    _stop_and_judge(opamp_agent_setup, signum, "AGT-DISCONNECT", "ws")


@pytest.mark.requirement("AGT-DISCONNECT-HTTP")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_http_agent_says_goodbye(opamp_agent_setup: AgentSetup, signum: signal.Signals) -> None:
    _stop_and_judge(opamp_agent_setup, signum, "AGT-DISCONNECT-HTTP", "http")


def _next_attempt(sc: OpAMPScenario, after: float, until: float) -> float | None:
    """When the agent next tried (a request or a WebSocket connection) after ``after``."""
    while True:
        later = [t for t in sc.events() if t > after]
        if later:
            return later[0]
        if time.monotonic() >= min(until, sc.deadline) or not sc.agent.running():
            return None
        time.sleep(0.01)


def _failing_replies(sc: OpAMPScenario, seen: list[Received]) -> list[Received]:
    """The messages answered with throttling (429 or 503; over WebSocket UNAVAILABLE and a
    close): the spec's retry cases. Other failures are not judged: an agent may drop the
    message, and a WebSocket agent reconnects at once after a lost connection."""
    return [r for r in seen if r.reply.kind in ("429", "503")]


def throttling(setup: AgentSetup) -> st.SearchStrategy[Reply]:
    """Throttling replies asking for twice the floor (whole seconds, as HTTP sends them),
    so that an agent retrying on its own backoff is seen not to wait for it."""
    seconds = max(1, math.ceil(2 * setup.timing.floor))
    return st.builds(Reply, st.sampled_from(["429", "503"]), st.just(seconds))


@pytest.mark.requirement("AGT-RETRY-AFTER")
def test_retry_after_is_honoured(opamp_agent_setup: AgentSetup) -> None:
    setup = opamp_agent_setup
    timing = setup.timing

    @conformance_property(max_examples=active().agent_examples, throttle=throttling(setup))
    def run(throttle: Reply) -> None:
        with running_opamp_agent(setup, replies=[ACK, throttle], ws_heartbeat=WS_HEARTBEAT) as sc:
            seen = sc.wait(2)
            _remember(setup, sc)
            if len(seen) < 2:
                _not_judged("send a second message", setup)
            asked = float(throttle.seconds or 0)
            came = _next_attempt(sc, seen[1].at, seen[1].at + timing.at_most(asked) + 10)
            if came is None:
                _not_judged("try again after the throttling reply", setup)
            waited = came - seen[1].at
            if waited < timing.at_least(asked):
                raise Violation(
                    "AGT-RETRY-AFTER",
                    f"answered {throttle} (come back in {asked:g} s), the agent tried again"
                    f" after {waited:.3f} s",
                    sc.transcript(),
                )

    run()


#: Throttling without a hint (no Retry-After, no retry_info): the agent's own backoff.
FAILURES = st.lists(st.builds(Reply, st.sampled_from(["429", "503"])), min_size=1, max_size=3)


@pytest.mark.requirement("AGT-RETRY-MIN")
def test_failed_exchanges_are_retried_after_the_floor(opamp_agent_setup: AgentSetup) -> None:
    setup = opamp_agent_setup
    timing = setup.timing

    @conformance_property(max_examples=active().agent_examples, failures=FAILURES)
    def run(failures: list[Reply]) -> None:
        plan = [ACK, *failures]
        with running_opamp_agent(setup, replies=plan, ws_heartbeat=WS_HEARTBEAT) as sc:
            seen = sc.wait(len(plan) + 1)
            _remember(setup, sc)
            judged = 0
            for failed in _failing_replies(sc, seen):
                came = _next_attempt(sc, failed.at, failed.at + timing.at_most(timing.longest))
                if came is None:
                    continue
                judged += 1
                if came - failed.at < timing.at_least(timing.floor):
                    raise Violation(
                        "AGT-RETRY-MIN",
                        f"after the reply {failed.reply} the agent tried again in"
                        f" {came - failed.at:.3f} s; the floor is {timing.floor:g} s"
                        " (--backoff-floor)",
                        sc.transcript(),
                    )
            if not judged:
                _not_judged("retry after a failed exchange", setup)

    run()


#: Failures in a row for AGT-BACKOFF: enough intervals for growth and for jitter.
BACKOFF_FAILURES = max(GROWTH_INTERVALS, JITTER_INTERVALS) + 1


@pytest.mark.requirement("AGT-BACKOFF")
def test_repeated_failures_back_off_with_jitter(opamp_agent_setup: AgentSetup) -> None:
    """Two agents fail the same way at once: their retries must grow, stay capped, and differ."""
    setup = opamp_agent_setup
    timing = setup.timing
    replies = [Reply("503")] * BACKOFF_FAILURES
    refuse = [503] * BACKOFF_FAILURES
    with (
        running_opamp_agent(setup, replies=replies, refuse=refuse) as a,
        running_opamp_agent(setup, replies=replies, refuse=refuse) as b,
    ):
        seen = [sc.wait_events(BACKOFF_FAILURES + 1) for sc in (a, b)]
        _remember(setup, a)
    for sc, times in zip((a, b), seen, strict=True):
        gaps = intervals(times)[:BACKOFF_FAILURES]
        if not_growing_from_first(gaps, timing):
            raise Violation(
                "AGT-BACKOFF",
                f"{len(gaps)} retries after failures at intervals {fmt(gaps)}: they do not grow"
                " (by the third retry they should reach twice the first interval, or half"
                f" the cap {timing.cap:g} s, less tolerance)",
                sc.transcript(),
            )
        too_long = [g for g in gaps if g > timing.at_most(timing.longest)]
        if too_long:
            raise Violation(
                "AGT-BACKOFF",
                f"retry intervals {fmt(gaps)} exceed the cap {timing.cap:g} s (--backoff-cap)",
                sc.transcript(),
            )
    gaps_a, gaps_b = (intervals(t) for t in seen)
    if min(len(gaps_a), len(gaps_b)) < JITTER_INTERVALS:
        _not_judged(f"retry {JITTER_INTERVALS} times", setup)
    if same_schedule(gaps_a, gaps_b):
        raise Violation(
            "AGT-BACKOFF",
            f"no jitter: two agents failing at the same moment retried at the same intervals,"
            f" {fmt(gaps_a[:JITTER_INTERVALS])} and {fmt(gaps_b[:JITTER_INTERVALS])}",
            "agent 1:\n" + a.transcript() + "\nagent 2:\n" + b.transcript(),
        )


@pytest.mark.requirement("AGT-BADREQ")
def test_bad_request_is_not_sent_again(opamp_agent_setup: AgentSetup) -> None:
    setup = opamp_agent_setup
    with running_opamp_agent(
        setup, replies=[Reply("bad-request")], ws_heartbeat=WS_HEARTBEAT
    ) as sc:
        seen = sc.wait(2)
        _remember(setup, sc)
        if len(seen) < 2:
            _not_judged("send a second message", setup)
        rejected, after = seen[0].message, seen[1].message
        if rejected is not None and after is not None and repeats(rejected, after):
            raise Violation(
                "AGT-BADREQ",
                f"seq {rejected.sequence_num} was answered BAD_REQUEST; seq"
                f" {after.sequence_num} sends the same message again",
                sc.transcript(),
            )


#: Odd replies an agent may take in its stride, then those it may treat as a failed
#: exchange (and back off after, perhaps beyond the window): each group in a drawn order.
ODD_ACCEPTABLE = ["empty", "no-uid"]
ODD_FAILING = ["wrong-ct", "garbage", "500"]
ODD_ORDERS = st.tuples(st.permutations(ODD_ACCEPTABLE), st.permutations(ODD_FAILING)).map(
    lambda groups: [*groups[0], *groups[1]]
)


@pytest.mark.requirement("AGT-ROBUST")
def test_odd_replies_do_not_stop_the_agent(opamp_agent_setup: AgentSetup) -> None:
    setup = opamp_agent_setup
    timing = setup.timing

    @conformance_property(max_examples=active().agent_examples, order=ODD_ORDERS)
    def run(order: list[str]) -> None:
        plan = [ACK, *(Reply(kind) for kind in order)]
        with running_opamp_agent(setup, replies=plan, ws_heartbeat=WS_HEARTBEAT) as sc:
            seen = sc.wait(len(plan) + 1)
            _remember(setup, sc)
            if not sc.agent.running():
                last = seen[-1] if seen else None
                raise Violation(
                    "AGT-ROBUST",
                    f"the agent exited (status {sc.agent.proc.returncode}) after the reply"
                    f" {last.reply if last else '(none)'}",
                    sc.transcript(),
                )
            if len(seen) < len(plan) + 1:
                bound = seen[-1].at + timing.at_most(timing.longest) + 5
                came = _next_attempt(sc, seen[-1].at, bound)
                if came is None and not sc.agent.running():
                    raise Violation(
                        "AGT-ROBUST",
                        f"the agent exited (status {sc.agent.proc.returncode}) after the"
                        f" reply {seen[-1].reply}",
                        sc.transcript(),
                    )
                if came is None:
                    _not_judged("talk again after the odd replies", setup)

    run()
