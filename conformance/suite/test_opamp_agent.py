"""OpAMP agents under test: the suite plays the OpAMP server (rules section 5, AGT-*).

Each scenario launches one agent through ``--agent-cmd`` (with
``--agent-protocol`` opamp or both) against a fresh mock OpAMP server whose
replies follow a generated plan, and judges every message it receives with
``conformance/model/opamp_agent.py``. Waits are bounded by ``--agent-window``
and ``--agent-start-timeout``, and sized to the agent's own clock
(``conformance/agent/pacing.py``): an agent that takes a heartbeat offer is
offered a 1 s interval, replies ask for full state where a rule allows it so
that the agent sends at once, and a rule whose scenario cannot fit the window
is *not judged* with the window it needs; a rule for the other transport is
*not applicable*, with what the agent did as the evidence.
"""

from __future__ import annotations

import functools
import math
import signal
import time
from collections.abc import Callable

import pytest
from hypothesis import strategies as st

from conformance.agent.opamp_scenario import OpAMPScenario, running_opamp_agent
from conformance.agent.pacing import (
    OFFER,
    check_transport,
    clock_of,
    first_retry,
    learn,
    require_transport,
    side_by_side,
    upfront,
    wait_sized,
)
from conformance.agent.scenario import AgentSetup
from conformance.model.agent_timing import (
    GROWTH_INTERVALS,
    JITTER_INTERVALS,
    SPEC_POLL,
    START_ALLOWANCE,
    describe_clock,
    fmt,
    intervals,
    not_growing_from_first,
    retry_waits,
    same_schedule,
    window_needed,
    window_remedy,
)
from conformance.model.opamp_agent import (
    ACK,
    Received,
    Reply,
    bare,
    check_capabilities,
    check_content_type,
    check_decodable,
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
    takes_heartbeat_offer,
    unanswered,
)
from conformance.outcomes import not_applicable, not_judged
from conformance.profiles import active
from conformance.properties import conformance_property
from conformance.verdicts import Findings, Violation, Violations
from conformance.wire import AgentCap

FULL = Reply("full")
NEW_UID = Reply("new-uid")
FAILED = Reply("500")
#: The heartbeat interval AGT-HEARTBEAT offers, in seconds.
OFFERED_HEARTBEAT = 2
#: Seconds between the unsolicited WebSocket pushes while AGT-HEARTBEAT is judged.
PUSH_EVERY = 0.5
#: Seconds each plain-HTTP reply is held while AGT-ONE-INFLIGHT watches for overlap.
HOLD = 0.3
#: A message sent sooner than this after a plain ack counts as a resend in a loop ...
LOOP_GAP = 0.1
#: ... and this many in a row are a loop.
LOOP_RUN = 10
#: How long AGT-NO-LOOP watches an agent answered with plain acks only.
LOOP_WATCH = 2.0
#: How long a stopped agent has to say goodbye and exit.
STOP_GRACE = 10.0
#: How long AGT-ROBUST watches an agent after an odd reply when the rest cannot fit.
ROBUST_GRACE = 1.0
#: Remedy for an agent that exited before its scenario could judge the rule.
KEEP_RUNNING = "keep the agent running through the scenario (see its output; check --agent-cmd)"


def _exited(sc: OpAMPScenario, what: str) -> None:
    """When the agent exited before it could ``what``: an AGT-ROBUST finding if it had
    spoken (a server's reply ended it), else *not judged* (a start-up problem)."""
    if not sc.agent.running():
        seen = sc.messages()
        tries = sc.mock.attempts()
        if seen or tries:
            last = (
                f"the last reply it got was {seen[-1].reply}"
                if seen and (not tries or seen[-1].at >= tries[-1].at)
                else f"its last WebSocket upgrade was answered {tries[-1].answer}"
            )
            raise Violation(
                "AGT-ROBUST",
                f"the agent exited (status {sc.agent.proc.returncode}) before it could {what};"
                f" {last}",
                sc.transcript(),
            )
        not_judged(
            f"the agent exited (status {sc.agent.proc.returncode}) before it could {what}",
            KEEP_RUNNING,
        )


@st.composite
def conversation_plans(draw: st.DrawFn) -> list[Reply]:
    """Replies that always ask for full state and assign a new uid, in a drawn order mixed
    with drawn extra acks, flags and uids, then fail once (HTTP 500, or a closed
    WebSocket): last, so that an agent backing off long after it has been judged on the
    rest; the message after it shows how the agent retries."""
    extra = draw(st.lists(st.sampled_from([ACK, FULL, NEW_UID]), max_size=3))
    return [*draw(st.permutations([FULL, NEW_UID, ACK, *extra])), FAILED]


@pytest.mark.requirement(
    "AGT-FIRST-FULL",
    "AGT-SEQ",
    "AGT-FULL-ON-FLAG",
    "AGT-UID",
    "AGT-NEW-UID",
    "AGT-CAPS",
    "AGT-BODY",
)
def test_messages_follow_the_model(opamp_agent_setup: AgentSetup) -> None:
    """Every message of a generated conversation is judged by the per-message rules."""
    setup = opamp_agent_setup
    timing = setup.timing

    @conformance_property(max_examples=active().agent_examples, plan=conversation_plans())
    def run(plan: list[Reply]) -> None:
        with running_opamp_agent(setup, replies=plan, heartbeat=OFFER) as sc:
            # Each reply but a ReportFullState flag leaves the agent to its poll period.
            polls = sum(1 for r in plan[:-1] if r != FULL)
            seen, short = wait_sized(
                setup, sc, len(plan), polls=polls, what="answer every reply of the plan"
            )
            if short is None and len(seen) == len(plan):
                # The retry after the failure, as far as the window reaches: an agent that
                # resends the failed message at once (AGT-SEQ) is caught however short it is.
                retry = first_retry(setup) or 2 * timing.floor
                seen = sc.wait(len(plan) + 1, until=seen[-1].at + timing.at_most(retry))
            learn(setup, sc)
            judge_messages(sc, seen)
            left = unanswered(seen, frozenset({"full", "new-uid"}))
            if left:
                if short is not None:
                    short.raise_()
                _exited(sc, f"send a message after the replies {', '.join(left)}")
                need = setup.window + timing.at_most(setup.window)
                not_judged(
                    f"the agent sent no message after the replies {', '.join(left)} within"
                    f" --agent-window ({setup.window:g} s)",
                    window_remedy(need),
                )

    run()


def judge_messages(sc: OpAMPScenario, seen: list[Received]) -> None:
    """The per-message rules over what the agent sent; none is judged on nothing decoded."""
    unreadable = check_decodable(seen)
    if unreadable is not None and not any(item.message is not None for item in seen):
        # Rules about messages cannot pass on messages that never decoded.
        raise Violations([Violation("AGT-BODY", unreadable, sc.transcript())], complete=False)
    findings = Findings()
    if unreadable is not None:
        findings.add("AGT-BODY", unreadable, sc.transcript())
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


@pytest.mark.requirement("AGT-CT", "AGT-UID-HEADER")
def test_http_requests_are_well_formed(opamp_agent_setup: AgentSetup) -> None:
    """Plain-HTTP headers on every request of a short conversation: the first reply asks
    for full state, so the second request follows it at once."""
    setup = opamp_agent_setup
    require_transport(setup, "http", "AGT-CT and AGT-UID-HEADER")
    plan = [FULL, ACK, ACK, ACK]
    with running_opamp_agent(setup, replies=plan, heartbeat=OFFER) as sc:
        check_transport(setup, sc, "http", "AGT-CT and AGT-UID-HEADER")
        seen, short = wait_sized(
            setup, sc, len(plan) + 1, polls=len(plan) - 1, what="send five requests"
        )
        learn(setup, sc)
        findings = Findings()
        for req_id, check in (
            ("AGT-CT", check_content_type),
            ("AGT-UID-HEADER", check_uid_header),
        ):
            problem = check(seen)
            if problem is not None:
                findings.add(req_id, problem, sc.transcript())
        findings.raise_if_any()
        # Two requests (the second sent on the flag, at once) judge both rules.
        if len(seen) < 2:
            if short is not None:
                short.raise_()
            _exited(sc, "send a second request")
            not_judged(
                "the agent sent one request only, though the reply asked for full state",
                window_remedy(2 * setup.window),
            )


@pytest.mark.requirement("AGT-ONE-INFLIGHT")
def test_http_requests_go_one_at_a_time(opamp_agent_setup: AgentSetup) -> None:
    """Every plain-HTTP reply is held :data:`HOLD` s: each is a chance for the agent to send
    a second request beside the open one (a status update, a poll). Judged once every
    reply of the plan was held and answered (the agent came back after the last): fewer
    requests are too thin to show that it never overlaps."""
    setup = opamp_agent_setup
    require_transport(setup, "http", "AGT-ONE-INFLIGHT")
    plan = [FULL, ACK, ACK, ACK]
    with running_opamp_agent(setup, replies=plan, hold=HOLD, heartbeat=OFFER) as sc:
        check_transport(setup, sc, "http", "AGT-ONE-INFLIGHT")
        seen, short = wait_sized(
            setup,
            sc,
            len(plan) + 1,
            polls=len(plan) - 1,
            what=f"meet all {len(plan)} held replies",
        )
        learn(setup, sc)
        problem = check_one_in_flight(seen)
        if problem is not None:
            raise Violation("AGT-ONE-INFLIGHT", problem, sc.transcript())
        if len(seen) < len(plan) + 1:
            if short is not None:
                short.raise_()
            _exited(sc, f"answer all {len(plan)} held replies")
            not_judged(
                f"the agent sent {len(seen)} requests; AGT-ONE-INFLIGHT is judged once all"
                f" {len(plan)} held replies were answered and the agent came back after the"
                " last",
                window_remedy(2 * setup.window),
            )


#: Replies that ask nothing of the agent at once, each watched for a loop by its own agent:
#: a plain ack, and a BAD_REQUEST error (the agent has no status change to report after
#: either, spec l. 1183; a rejected message is dropped, not answered with another).
LOOP_REPLIES = (ACK, Reply("bad-request"))


@pytest.mark.requirement("AGT-NO-LOOP")
def test_plain_ack_does_not_make_the_agent_loop(opamp_agent_setup: AgentSetup) -> None:
    """Every reply is a plain ack (one agent) or BAD_REQUEST (another, side by side); each
    agent is watched for :data:`LOOP_WATCH` from the first such reply, however late it came
    (the watch does not end with the window)."""
    setup = opamp_agent_setup
    upfront(setup, "AGT-NO-LOOP", f"{LOOP_WATCH:g} s after the first ack", 1 + LOOP_WATCH)

    def one(standing: Reply) -> None:
        kinds = frozenset({standing.kind})
        with running_opamp_agent(setup, then=standing) as sc:
            # Over WebSocket the first contact may be the upgrade: its first message follows.
            sc.watch(max(sc.deadline, time.monotonic() + START_ALLOWANCE), done=bool)
            acked = next(
                (r for r in sc.messages() if r.reply == standing and r.sent is not None), None
            )
            if acked is None:
                _exited(sc, f"send a message to answer {standing}")
                not_judged(
                    f"no message of the agent was answered {standing} within --agent-window",
                    window_remedy(2 * setup.window),
                )
            until = acked.at + LOOP_WATCH
            # A loop found ends the watch early: that is the finding.
            seen = sc.watch(
                until, done=lambda seen: quick_resends(seen, LOOP_GAP, kinds) >= LOOP_RUN
            )
            watched = min(time.monotonic(), until) - acked.at
            learn(setup, sc)
            run = quick_resends(seen, LOOP_GAP, kinds)
            if run >= LOOP_RUN:
                span = seen[-1].at - seen[0].at
                raise Violation(
                    "AGT-NO-LOOP",
                    f"{len(seen)} messages in {span:.2f} s answered {standing} only; {run} in"
                    f" a row came less than {LOOP_GAP:g} s after the reply",
                    sc.transcript(),
                )
            if watched < LOOP_WATCH:
                _exited(sc, f"be watched for {LOOP_WATCH:g} s after the first {standing}")
                not_judged(
                    f"the agent was watched for {watched:.1f} s after the first {standing};"
                    f" AGT-NO-LOOP needs {LOOP_WATCH:g} s",
                    window_remedy(acked.at - sc.started + LOOP_WATCH + START_ALLOWANCE),
                )

    bound = 2 * (setup.start_timeout + setup.window) + STOP_GRACE
    side_by_side([functools.partial(one, r) for r in LOOP_REPLIES], timeout=bound)


@pytest.mark.requirement("AGT-HEARTBEAT")
def test_offered_heartbeat_interval_is_used(opamp_agent_setup: AgentSetup) -> None:
    """The first reply offers :data:`OFFERED_HEARTBEAT`. The spec lets an agent apply new
    connection settings at its next opportunity, so the first message after the offer may
    come up to the agent's own poll period later (measured, else the spec's 30 s); from
    that message on there is no silence longer than the offered interval allows, and
    heartbeats are no closer than it."""
    setup = opamp_agent_setup
    timing = setup.timing
    every = OFFERED_HEARTBEAT
    latest = 1.5 * every + 0.5
    want = 4
    clock = clock_of(setup)
    if clock.capabilities is not None and not takes_heartbeat_offer(clock.capabilities):
        _not_offered(clock.capabilities, clock.contact)
    with running_opamp_agent(setup, replies=[Reply("heartbeat", every)]) as sc:
        first = sc.wait(1)
        learn(setup, sc)
        if not first or first[0].message is None:
            _exited(sc, "send a decodable first message")
            not_judged(
                "the agent sent no decodable first message within --agent-window"
                f" ({setup.window:g} s)",
                window_remedy(2 * setup.window),
            )
        if not takes_heartbeat_offer(first[0].message.capabilities):
            _not_offered(first[0].message.capabilities, sc.first_contact())
        # Whether the rule applies is known from the first message: only then the window.
        upfront(
            setup,
            "AGT-HEARTBEAT",
            f"{want} messages at most {latest:g} s apart",
            START_ALLOWANCE + latest * want,
        )
        offered_at = first[0].at
        period = clock.period if clock.period is not None else SPEC_POLL
        allow = max(latest, timing.at_most(period))
        seen = sc.wait(2, until=offered_at + allow)
        if len(seen) < 2:
            _exited(sc, "send a message after the offer")
            silence = time.monotonic() - offered_at
            clock_text = describe_clock(clock.period, offered=False)
            if silence < allow:
                need = offered_at - sc.started + allow + latest * want
                not_judged(
                    f"the window ended {silence:.1f} s after the offer, with no message since;"
                    " the agent may apply the offered interval from its next message on, up"
                    f" to its poll period later ({clock_text})",
                    window_remedy(need),
                )
            raise Violation(
                "AGT-HEARTBEAT",
                f"offered heartbeat_interval_seconds={every}; no message for {silence:.1f} s"
                f" after it, longer than the agent's own poll period allows ({clock_text})",
                sc.transcript(),
            )
        # From the first message after the offer on, the offered interval is in force.
        # Over WebSocket the mock now also pushes messages that ask for nothing, more often
        # than the interval: the agent counts it from its own last message (spec l. 2110),
        # so they must not hold its heartbeats back.
        start = seen[1]
        sc.mock.push(PUSH_EVERY)
        seen = sc.wait(want, until=start.at + latest * (want - 1))
        judged = seen[1:]
        if len(seen) < want:
            silence = time.monotonic() - seen[-1].at
            _exited(sc, f"send {want} messages")
            if silence < latest:
                not_judged(
                    f"the window ended {silence:.1f} s after the agent's last message, before"
                    f" {want - 1} messages at the offered interval",
                    window_remedy(start.at - sc.started + latest * want + START_ALLOWANCE),
                )
            raise Violation(
                "AGT-HEARTBEAT",
                f"offered heartbeat_interval_seconds={every}; no message for {silence:.1f} s"
                f" after seq {seen[-1].message.sequence_num if seen[-1].message else '?'}",
                sc.transcript(),
            )
        soonest = timing.at_least(every)
        problem = check_heartbeat(judged, soonest, latest, sc.mock.pushes())
        if problem is not None:
            gaps = intervals([r.at for r in judged])
            raise Violation(
                "AGT-HEARTBEAT",
                f"offered heartbeat_interval_seconds={every}: {problem}; the intervals from"
                f" the first message after it were {fmt(gaps)}",
                sc.transcript(),
            )


def _not_offered(capabilities: int, contact: str) -> None:
    not_applicable(
        "the interval is offered in OpAMP connection settings, to an agent declaring"
        " ReportsHeartbeat and AcceptsOpAMPConnectionSettings",
        f"{contact}; its capabilities are {capabilities:#x}"
        f" (ReportsHeartbeat {AgentCap.REPORTS_HEARTBEAT:#x} and"
        f" AcceptsOpAMPConnectionSettings {AgentCap.ACCEPTS_OPAMP_CONNECTION_SETTINGS:#x}"
        " not both set)",
    )


def _stop_and_judge(setup: AgentSetup, signum: signal.Signals, req_id: str, wanted: str) -> None:
    require_transport(setup, wanted, req_id)
    # The flag makes the agent send its second message at once.
    with running_opamp_agent(setup, replies=[FULL], heartbeat=OFFER) as sc:
        check_transport(setup, sc, wanted, req_id)
        seen, short = wait_sized(setup, sc, 2, polls=0, what="send two messages")
        if len(seen) < 2:
            _exited(sc, "send two messages")
            if short is not None:
                short.raise_()
        exited = sc.stop_with(signum, STOP_GRACE)
        time.sleep(0.1)  # the last bytes may still be in the mock's hands
        seen = sc.messages()
        if not seen:
            not_judged(
                f"the agent sent no message before {signum.name}",
                window_remedy(2 * setup.window),
            )
        last = seen[-1].message
        if last is None or not last.HasField("agent_disconnect"):
            if not exited:
                not_judged(
                    f"the agent did not exit within {STOP_GRACE:g} s of {signum.name}",
                    f"make the agent exit on {signum.name} (check --agent-cmd: a wrapper"
                    " script must pass the signal on)",
                )
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


def throttle_seconds(setup: AgentSetup) -> int:
    """What the throttling replies ask for: twice the floor (whole seconds, as HTTP sends
    them), so that an agent retrying on its own backoff is seen not to wait for it."""
    return max(1, math.ceil(2 * setup.timing.floor))


#: Seconds beyond the latest moment a throttled agent may come back (the asked delay plus
#: its own longest backoff or poll period) before its silence is a finding: room for a
#: reconnect on a loaded machine.
COMEBACK_SLACK = 5.0


@pytest.mark.requirement("AGT-RETRY-AFTER")
def test_retry_after_is_honoured(opamp_agent_setup: AgentSetup) -> None:
    """Two throttling replies, each to its own agent, side by side: 429 with Retry-After in
    seconds, and 503 with Retry-After as an HTTP date (RFC 9110 allows both, spec l. 3546).
    Over WebSocket the 429 is UNAVAILABLE with retry_info, and the 503 refuses the first
    upgrade (spec l. 3540). The agent must wait at least that long, and come back when it
    is due (l. 3540: the header says when the client should reconnect): at the latest by
    then plus its own longest backoff or poll period (an agent may wait for both)."""
    setup = opamp_agent_setup
    asked = throttle_seconds(setup)
    # No up-front "does not fit" here: an agent that ignores the hint comes back early,
    # inside any window; only one that honours it needs the whole wait to pass.

    def one(throttle: Reply, *, at_upgrade: bool = False) -> None:
        # The flag makes the agent send the message the throttling reply answers at once.
        refuse = [throttle] if at_upgrade else []
        with running_opamp_agent(
            setup, replies=[FULL, throttle], refuse=refuse, heartbeat=OFFER
        ) as sc:
            tries = sc.mock.attempts()
            if at_upgrade and tries:
                # A WebSocket agent: its first upgrade was refused with the hint.
                _judge_comeback(setup, sc, tries[0].at, f"its upgrade refused {throttle}")
                return
            seen, short = wait_sized(
                setup, sc, 2, polls=0, waits=(asked,), what="meet the throttling reply"
            )
            if len(seen) < 2:
                _exited(sc, "send a second message")
                if short is not None:
                    short.raise_()
            _judge_comeback(setup, sc, seen[1].at, f"answered {seen[1].reply}")

    bound = 2 * (setup.start_timeout + setup.window) + STOP_GRACE
    side_by_side(
        [
            lambda: one(Reply("429", asked)),
            lambda: one(Reply("503", asked, "date"), at_upgrade=True),
        ],
        timeout=bound,
    )


def _judge_comeback(setup: AgentSetup, sc: OpAMPScenario, throttled: float, what: str) -> None:
    """AGT-RETRY-AFTER on the agent's next attempt after a throttling answer at ``throttled``
    (``what``: that answer, in words) asking for :func:`throttle_seconds`."""
    timing = setup.timing
    asked = throttle_seconds(setup)
    # An HTTP date is written in whole seconds: up to 1 s more may have been asked.
    due = asked + 1
    own = max(timing.longest, clock_of(setup).period or 0.0)
    latest = timing.at_most(due + own) + COMEBACK_SLACK
    came = _next_attempt(sc, throttled, throttled + latest)
    learn(setup, sc)
    if came is None:
        _exited(sc, "try again after the throttling reply")
        silent = time.monotonic() - throttled
        if silent >= latest:
            raise Violation(
                "AGT-RETRY-AFTER",
                f"{what} (come back in {asked} s), the agent had not tried again"
                f" {silent:.1f} s later; its own longest backoff (1.5 x --backoff-cap) or"
                f" poll period adds at most {own:g} s",
                sc.transcript(),
            )
        not_judged(
            f"the agent did not try again within --agent-window ({setup.window:g} s)"
            f" of a reply asking it to come back in {asked} s",
            window_remedy(
                max(window_needed(timing, waits=(due + own,)) + COMEBACK_SLACK, 2 * setup.window)
            ),
        )
    waited = came - throttled
    if waited < timing.at_least(asked):
        raise Violation(
            "AGT-RETRY-AFTER",
            f"{what} (come back in {asked:g} s), the agent tried again after {waited:.3f} s",
            sc.transcript(),
        )


def _one_unreadable(failures: list[Reply]) -> list[Reply]:
    """At least one failure carries an unreadable Retry-After (the last, unless one does)."""
    if any(r.hint == "junk" for r in failures):
        return failures
    return [*failures[:-1], Reply(failures[-1].kind, hint="junk")]


#: Throttling without a hint (no Retry-After, or one that is neither delta-seconds nor an
#: HTTP date; over WebSocket UNAVAILABLE without retry_info): the agent's own backoff.
FAILURES = st.lists(
    st.builds(
        Reply, st.sampled_from(["429", "503"]), st.none(), st.sampled_from(["seconds", "junk"])
    ),
    min_size=1,
    max_size=3,
).map(_one_unreadable)


@pytest.mark.requirement("AGT-RETRY-MIN")
def test_failed_exchanges_are_retried_after_the_floor(opamp_agent_setup: AgentSetup) -> None:
    setup = opamp_agent_setup
    timing = setup.timing
    # Run whatever the window: a retry below the floor comes early, inside any window.

    @conformance_property(max_examples=active().agent_examples, failures=FAILURES)
    def run(failures: list[Reply]) -> None:
        plan = [FULL, *failures]
        with running_opamp_agent(setup, replies=plan, heartbeat=OFFER) as sc:
            waits = tuple(retry_waits(timing, len(failures), first_retry(setup)))
            need = window_needed(timing, waits=waits)
            seen = sc.wait(len(plan) + 1, until=sc.started + need)
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
            learn(setup, sc)
            # An agent that died on a failure (an unreadable Retry-After, say) is a finding
            # even when an earlier retry was judged.
            _exited(sc, "retry after every failed exchange")
            if not judged:
                not_judged(
                    f"the agent did not retry a failed exchange within --agent-window"
                    f" ({setup.window:g} s)",
                    window_remedy(max(need, setup.window) + timing.at_most(timing.longest)),
                )

    run()


#: Failures in a row for AGT-BACKOFF: enough intervals for growth and for jitter.
BACKOFF_FAILURES = max(GROWTH_INTERVALS, JITTER_INTERVALS) + 1


@pytest.mark.requirement("AGT-BACKOFF")
def test_repeated_failures_back_off_with_jitter(opamp_agent_setup: AgentSetup) -> None:
    """Two agents fail the same way at once: their retries must grow, stay capped, and differ."""
    setup = opamp_agent_setup
    timing = setup.timing
    # Run whatever the window: retries that do not grow, or agree to the millisecond,
    # show early; a conforming backoff needs the whole wait (then it is not judged).
    need = window_needed(timing, waits=retry_waits(timing, BACKOFF_FAILURES, first_retry(setup)))
    replies = [Reply("503")] * BACKOFF_FAILURES
    refuse = [503] * BACKOFF_FAILURES
    with (
        running_opamp_agent(setup, replies=replies, refuse=refuse) as a,
        running_opamp_agent(setup, replies=replies, refuse=refuse) as b,
    ):
        seen = [sc.wait_events(BACKOFF_FAILURES + 1) for sc in (a, b)]
        learn(setup, a)
        # Whether an agent exited on its own, asked while both still run (the scenarios
        # stop them on leaving this block).
        exited = [sc for sc in (a, b) if not sc.agent.running()]
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
        for sc in exited:
            _exited(sc, f"retry {JITTER_INTERVALS} times")
        not_judged(
            f"the agents retried {len(gaps_a)} and {len(gaps_b)} times within --agent-window"
            f" ({setup.window:g} s); jitter needs {JITTER_INTERVALS}",
            window_remedy(max(need, 2 * setup.window)),
        )
    if same_schedule(gaps_a, gaps_b):
        raise Violation(
            "AGT-BACKOFF",
            f"no jitter: two agents failing at the same moment retried at the same intervals,"
            f" {fmt(gaps_a[:JITTER_INTERVALS])} and {fmt(gaps_b[:JITTER_INTERVALS])}",
            "agent 1:\n" + a.transcript() + "\nagent 2:\n" + b.transcript(),
        )


@pytest.mark.requirement("AGT-BADREQ")
def test_bad_request_is_not_sent_again(opamp_agent_setup: AgentSetup) -> None:
    """The flag makes the agent send its full status at once; that message is answered
    BAD_REQUEST; the one after it must not be the same again."""
    setup = opamp_agent_setup
    plan = [FULL, Reply("bad-request")]
    with running_opamp_agent(setup, replies=plan, heartbeat=OFFER) as sc:
        seen, short = wait_sized(
            setup, sc, 3, polls=1, what="send a message after the BAD_REQUEST reply"
        )
        learn(setup, sc)
        if len(seen) >= 3:
            if bare(seen[1]):
                # A poll with nothing in it is sent again every period: a resend of it
                # cannot be told from the next poll.
                not_judged(
                    "the message answered BAD_REQUEST had nothing to report (the agent did"
                    " not send its full status on the ReportFullState flag), so a resend"
                    " could not be told from its next poll",
                    "make the agent answer ReportFullState with its full status"
                    " (AGT-FULL-ON-FLAG), then run again",
                )
            rejected, after = seen[1].message, seen[2].message
            if rejected is not None and after is not None and repeats(rejected, after):
                raise Violation(
                    "AGT-BADREQ",
                    f"seq {rejected.sequence_num} was answered BAD_REQUEST; seq"
                    f" {after.sequence_num} sends the same message again",
                    sc.transcript(),
                )
            return
        _exited(sc, "send a message after the BAD_REQUEST reply")
        if short is not None:
            short.raise_()
        not_judged(
            f"the agent sent {len(seen)} of the 3 messages AGT-BADREQ needs within"
            f" --agent-window ({setup.window:g} s)",
            window_remedy(2 * setup.window),
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
    """The acceptable replies first (each followed by a poll), then the failing ones (each
    perhaps by a retry). When the retries cannot fit the window, the agent is still
    watched through the acceptable replies and the first failing one, then *not judged*."""
    setup = opamp_agent_setup
    timing = setup.timing

    @conformance_property(max_examples=active().agent_examples, order=ODD_ORDERS)
    def run(order: list[str]) -> None:
        plan = [ACK, *(Reply(kind) for kind in order)]
        polls = 1 + len(ODD_ACCEPTABLE)
        waits = tuple(retry_waits(timing, len(ODD_FAILING), first_retry(setup)))
        with running_opamp_agent(setup, replies=plan, heartbeat=OFFER) as sc:
            seen, short = wait_sized(
                setup, sc, len(plan) + 1, polls=polls, waits=waits, what="meet every odd reply"
            )
            if short is not None:
                # Not all of it fits: watch the agent meet the acceptable replies and the
                # first failing one, judge that, and say what the rest needs.
                seen = sc.wait(polls + 1)
                if len(seen) >= polls + 1:
                    sc.wait(len(plan) + 1, until=time.monotonic() + ROBUST_GRACE)
                seen = sc.messages()
            learn(setup, sc)
            if not sc.agent.running():
                last = seen[-1] if seen else None
                raise Violation(
                    "AGT-ROBUST",
                    f"the agent exited (status {sc.agent.proc.returncode}) after the reply"
                    f" {last.reply if last else '(none)'}",
                    sc.transcript(),
                )
            if short is not None:
                not_judged(
                    f"the agent met {len(seen)} of the {len(plan)} replies and kept running;"
                    f" the rest needs about {short.need:.0f} s from the launch (retries"
                    f" after failing replies, from the floor {timing.floor:g} s);"
                    f" --agent-window is {setup.window:g} s",
                    short.remedy,
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
                    not_judged(
                        f"the agent did not talk again within --agent-window"
                        f" ({setup.window:g} s) after the odd reply {seen[-1].reply}",
                        window_remedy(setup.window + timing.at_most(timing.longest)),
                    )

    run()
