"""Agents under test against the suite's mock Fleet server (FLEET-AGT-*).

Each scenario launches one agent through ``--agent-cmd`` against a fresh
mock Fleet server whose replies follow a fault plan, timestamps every
request, and probes the agent's ``/liveness``. Timing is judged with the
bounds of ``conformance/model/agent_timing.py``; every wait is bounded by
``--agent-window`` and ``--agent-start-timeout``; a rule the agent's backoff
did not let the window judge is *not judged*, with the window it needs.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import pytest
from hypothesis import strategies as st

from conformance.agent.mock_fleet import OK, Arrival, Fault
from conformance.agent.scenario import AgentSetup, Scenario, scenario
from conformance.model.agent_timing import (
    GROWTH_INTERVALS,
    JITTER_INTERVALS,
    LIVENESS,
    Timing,
    attempt_rate,
    below_floor,
    fmt,
    intervals,
    liveness_matches,
    not_growing,
    retry_waits,
    same_schedule,
    window_needed,
    window_remedy,
)
from conformance.outcomes import not_judged
from conformance.profiles import active
from conformance.properties import conformance_property
from conformance.verdicts import Violation

UNAUTHORIZED = Fault("401")


class AgentSilent(RuntimeError):
    """The launched agent never talked to the mock: a set-up problem, not a finding."""


@contextmanager
def running_agent(
    setup: AgentSetup, *, monitoring: bool = False, **plan: Any
) -> Iterator[Scenario]:
    """A scenario whose agent has been seen to start (and to serve /liveness, if asked)."""
    with scenario(setup, **plan) as sc:
        if sc.first_request("enroll") is None:
            raise AgentSilent(
                f"the agent sent no enrolment request within {setup.start_timeout:g} s"
                f" (running: {sc.agent.running()}); check --agent-cmd and --agent-env\n"
                + sc.transcript()
            )
        if monitoring and not sc.wait_monitoring():
            raise AgentSilent(
                f"the agent's monitoring endpoint (port {sc.monitoring_port}) never answered\n"
                + sc.transcript()
            )
        yield sc


def observe_until(sc: Scenario, endpoint: str, count: int, stop_early: bool = True) -> list[float]:
    """Arrival times at ``endpoint`` until ``count`` arrived, the window closed, or the agent
    exited; with ``stop_early``, also once an interval below the floor is seen."""
    deadline = sc.started + sc.setup.window
    while time.monotonic() < deadline and sc.agent.running():
        times = sc.times(endpoint)
        if len(times) >= count:
            break
        if stop_early and below_floor(intervals(times), sc.setup.timing) is not None:
            break
        time.sleep(0.02)
    return sc.times(endpoint)


def not_reached(setup: AgentSetup, what: str, need: float) -> NoReturn:
    """*Not judged*: the agent did not reach ``what`` within the window; ``need`` is the
    window its backoff bounds call for (doubled when the window already had that much)."""
    if need <= setup.window:
        need = 2 * setup.window
    not_judged(
        f"the agent did not reach {what} within --agent-window ({setup.window:g} s); with"
        f" its backoff from the floor {setup.timing.floor:g} s to the cap"
        f" {setup.timing.cap:g} s that takes up to about {need:.0f} s",
        window_remedy(need),
    )


def exited(sc: Scenario, what: str) -> None:
    """*Not judged* when the agent exited before it could ``what``."""
    if not sc.agent.running():
        not_judged(
            f"the agent exited (status {sc.agent.proc.returncode}) before it could {what}",
            "keep the agent running through the scenario (see its output; check"
            " --agent-cmd and --agent-env)",
        )


def gave_up(sc: Scenario, endpoint: str) -> Arrival | None:
    """The transient failure (not a 401) that the agent answered by exiting, if it has
    exited with that as its last request to ``endpoint``: transient faults are retried
    (fleet/facts: 429 too many requests, 502/503/504 temporary, connection errors retried);
    only a permanent 401 may end an agent's attempts."""
    if sc.agent.running():
        return None
    seen = sc.mock.arrivals(endpoint)
    if seen and seen[-1].fault.failing and seen[-1].fault != UNAUTHORIZED:
        return seen[-1]
    return None


def judge_gave_up(sc: Scenario, endpoint: str) -> None:
    """FLEET-AGT-ENROLL-BACKOFF when the agent exited after a transient failure."""
    last = gave_up(sc, endpoint)
    if last is not None:
        raise Violation(
            "FLEET-AGT-ENROLL-BACKOFF",
            f"the agent exited (status {sc.agent.proc.returncode}) after enrolment answered"
            f" {last.fault}, without retrying: a transient failure is retried with backoff",
            sc.transcript(),
        )


def enrolled_again(sc: Scenario) -> tuple[Arrival, Arrival] | None:
    """The first enrolment answered 200 and the next one, if the agent enrolled again
    before it ever checked in (an agent re-enrolling later, e.g. once check-ins are
    refused, is not this)."""
    seen = sorted(sc.mock.arrivals(), key=lambda a: a.at)
    done = next((a for a in seen if a.endpoint == "enroll" and a.answer == "200"), None)
    if done is None:
        return None
    after = next((a for a in seen if a.at > done.at), None)
    if after is None or after.endpoint != "enroll":
        return None
    return done, after


def reenrolled(sc: Scenario) -> None:
    """*Not judged* when the agent enrolled again instead of checking in."""
    if enrolled_again(sc) is not None:
        not_judged(
            "the agent enrolled again after its enrolment was answered 200, instead of"
            " checking in (a FLEET-AGT-ENROLL-ONCE finding), so it never met the check-ins"
            " this rule needs",
            "make the agent check in with the access key its enrolment returned",
        )


#: The tests below are in the order of how soon each reaches a verdict, so that a
#: defect surfaces early: the first check-in, the enrolment and check-in 401 rules,
#: jitter, the failon parameter, then the liveness and transient-fault properties,
#: which launch the agent once per example. With ``-n`` the plugin has pytest-xdist hand tests out
#: one at a time, so the first of them start side by side on different workers.


@pytest.mark.requirement("FLEET-AGT-ENROLL-ONCE")
def test_enrolled_agent_checks_in_instead_of_enrolling_again(agent_setup: AgentSetup) -> None:
    with running_agent(agent_setup) as sc:
        deadline = sc.started + agent_setup.window
        while time.monotonic() < deadline and sc.agent.running():
            pair = enrolled_again(sc)
            if pair is not None:
                raise Violation(
                    "FLEET-AGT-ENROLL-ONCE",
                    f"the agent enrolled again {pair[1].at - pair[0].at:.3f} s after its"
                    " enrolment was answered 200 (with its id and access key) instead of"
                    " checking in with that key",
                    sc.transcript(),
                )
            checkins = sc.mock.arrivals("checkin")
            if checkins:
                if checkins[0].answer != "200":
                    raise Violation(
                        "FLEET-AGT-ENROLL-ONCE",
                        f"the agent's first check-in was answered {checkins[0].answer}: it did"
                        " not check in as the agent enrolment named, with the access key"
                        " enrolment gave it",
                        sc.transcript(),
                    )
                return
            time.sleep(0.02)
        exited(sc, "check in after its enrolment")
        timing = agent_setup.timing
        not_reached(
            agent_setup,
            "a check-in after its enrolment",
            window_needed(timing, waits=retry_waits(timing, 1)),
        )


@pytest.mark.requirement("FLEET-AGT-ENROLL-401")
def test_permanent_401_enrolment_is_not_retried_in_a_tight_loop(agent_setup: AgentSetup) -> None:
    timing = agent_setup.timing
    with running_agent(agent_setup, enroll_then=UNAUTHORIZED) as sc:
        times = observe_until(sc, "enroll", GROWTH_INTERVALS + 2)
        gaps = intervals(times)
        first_short = below_floor(gaps, timing)
        if first_short is not None:
            raise Violation(
                "FLEET-AGT-ENROLL-401",
                f"tight loop: {len(times)} enrolment attempts in {times[-1] - times[0]:.2f} s"
                f" ({attempt_rate(times):.1f}/s) under a permanent 401; interval"
                f" #{first_short + 1} was {gaps[first_short]:.3f} s, the floor is"
                f" {timing.floor:g} s; intervals {fmt(gaps)}",
                sc.transcript(),
            )
        if not_growing(gaps, timing):
            raise Violation(
                "FLEET-AGT-ENROLL-401",
                f"the retry interval under a permanent 401 does not grow: intervals {fmt(gaps)};"
                f" by the third retry it should reach {timing.grown:.3f} s"
                f" (3 x floor {timing.floor:g} s or half the cap {timing.cap:g} s, less tolerance)",
                sc.transcript(),
            )
        # Too few retries to judge growth: fine if the agent stopped retrying (the rule
        # allows it), not judged if it may still be backing off.
        silent = time.monotonic() - times[-1] if times else 0.0
        if len(gaps) < GROWTH_INTERVALS and silent <= timing.at_most(timing.longest):
            exited(sc, f"retry its enrolment {GROWTH_INTERVALS} times")
            need = window_needed(timing, waits=retry_waits(timing, GROWTH_INTERVALS))
            not_reached(sc.setup, f"{GROWTH_INTERVALS + 1} enrolment attempts", need)


#: Consecutive 401 check-ins observed before the rule is considered judged; Elastic
#: Agent changes behaviour after the 7th.
CHECKIN_401_COUNT = 8


@pytest.mark.requirement("FLEET-AGT-CHECKIN-401")
def test_checkin_401_is_never_reported_healthy(
    agent_setup: AgentSetup, observe: Callable[[str], None]
) -> None:
    settle = agent_setup.settle
    with running_agent(agent_setup, monitoring=True, checkin=[OK], checkin_then=UNAUTHORIZED) as sc:
        deadline = sc.started + agent_setup.window
        judged_after = probed = 0
        while time.monotonic() < deadline and sc.agent.running() and not enrolled_again(sc):
            refused = [a for a in sc.mock.arrivals("checkin") if a.fault == UNAUTHORIZED]
            # Repeated 401s: judged from the second one on (a failure reaches Elastic
            # Agent's state only after the backoff that follows it).
            if len(refused) >= 2 and time.monotonic() - refused[1].at >= settle:
                status = sc.probe("degraded")
                probed += 1
                if status == 200:
                    raise Violation(
                        "FLEET-AGT-CHECKIN-401",
                        f"after {len(refused)} consecutive check-ins answered 401,"
                        " /liveness?failon=degraded answered 200 (healthy)",
                        sc.transcript(),
                    )
                if len(refused) >= CHECKIN_401_COUNT:
                    if judged_after and time.monotonic() - refused[-1].at >= settle:
                        return
                    judged_after += 1
            time.sleep(max(0.05, settle / 2))
        refused = [a for a in sc.mock.arrivals("checkin") if a.fault == UNAUTHORIZED]
        if len(refused) < 2 or not probed:
            # No probe after the second 401 had settled: nothing was judged.
            reenrolled(sc)
            exited(sc, "check in twice more")
            timing = agent_setup.timing
            need = window_needed(
                timing, waits=(agent_setup.checkin_hold, *retry_waits(timing, 2), settle)
            )
            not_reached(agent_setup, "a second 401 check-in and the settle time after it", need)
        observe(
            f"judged over {len(refused)} consecutive 401 check-ins (fewer than"
            f" {CHECKIN_401_COUNT}: Elastic Agent changes course after the 7th; a longer"
            " --agent-window reaches it)"
        )


@pytest.mark.requirement("FLEET-AGT-ENROLL-BACKOFF")
def test_retries_are_jittered(agent_setup: AgentSetup) -> None:
    """Two agents failing the same way at the same moment must not retry in lockstep."""
    plan = [Fault("503")] * JITTER_INTERVALS
    with (
        running_agent(agent_setup, enroll=plan) as a,
        running_agent(agent_setup, enroll=plan) as b,
    ):
        seen = [observe_until(sc, "enroll", JITTER_INTERVALS + 1, False) for sc in (a, b)]
        for sc in (a, b):
            judge_gave_up(sc, "enroll")
    gaps_a, gaps_b = (intervals(t)[:JITTER_INTERVALS] for t in seen)
    if min(len(gaps_a), len(gaps_b)) < JITTER_INTERVALS:
        for sc in (a, b):
            exited(sc, f"retry its enrolment {JITTER_INTERVALS} times")
        timing = agent_setup.timing
        need = window_needed(timing, waits=retry_waits(timing, JITTER_INTERVALS))
        not_reached(
            agent_setup,
            f"{JITTER_INTERVALS} enrolment retries from each of two agents (seen"
            f" {len(gaps_a)} and {len(gaps_b)})",
            need,
        )
    if same_schedule(gaps_a, gaps_b):
        raise Violation(
            "FLEET-AGT-ENROLL-BACKOFF",
            f"no jitter: two agents answered 503 at the same time retried at the same"
            f" intervals, {fmt(gaps_a)} and {fmt(gaps_b)}",
            "agent 1:\n" + a.transcript() + "\nagent 2:\n" + b.transcript(),
        )


@pytest.mark.requirement("FLEET-AGT-LIVENESS-PARAM")
def test_unknown_failon_is_a_client_error(agent_setup: AgentSetup) -> None:
    with running_agent(agent_setup, monitoring=True) as sc:
        for value in ("fleet-conformance-unknown", "42"):
            status = sc.probe(value)
            if status is None or not 400 <= status <= 499:
                raise Violation(
                    "FLEET-AGT-LIVENESS-PARAM",
                    f"/liveness?failon={value} answered {status or 'nothing'}; an unknown"
                    " value is a client error: 400",
                    sc.transcript(),
                )


#: Every liveness plan visits each condition once, in a drawn order (so every
#: transition between them is reachable), failing with a drawn fault.
FAILING = st.sampled_from(["500", "502", "503", "504", "reset"])
ORDERS = st.permutations(["failing", "warning", "connected"])


def condition_fault(condition: str, failing: str) -> Fault:
    return {"failing": Fault(failing), "warning": Fault("warning"), "connected": OK}[condition]


def settle_on(sc: Scenario, fault: Fault) -> bool:
    """Switch check-ins to ``fault``; wait until the agent has seen it, then the settle time.

    A clean or Warning reply counts once the long poll returns it. A failure
    counts at the second failing check-in: Elastic Agent reports a failed
    check-in to its coordinator only after the backoff wait that follows it
    (``fleet_gateway.go``), so one failure does not yet change its state.
    """
    switched = time.monotonic()
    sc.mock.plan("checkin", (), fault)
    sc.note(f"check-ins now answered {fault}")
    needed = 2 if fault.failing else 1
    timing = sc.setup.timing
    bound = needed * timing.at_most(timing.longest) + sc.setup.checkin_hold + sc.setup.settle + 5
    deadline = min(switched + bound, sc.started + sc.setup.window)
    while time.monotonic() < deadline and sc.agent.running() and not enrolled_again(sc):
        seen = [a for a in sc.mock.arrivals("checkin") if a.at >= switched and a.fault == fault]
        if len(seen) >= needed:
            held = 0.0 if fault.failing else sc.setup.checkin_hold
            time.sleep(held + sc.setup.settle)
            return True
        time.sleep(0.02)
    return False


FLEET_STATE = {"failing": "FAILED", "warning": "DEGRADED", "connected": "HEALTHY"}


def check_liveness(sc: Scenario, condition: str, *, only_down: bool = False) -> None:
    """The three ``failon`` answers under ``condition``; ``only_down``: judge only those
    that must fail (the agent's own components already made the healthy ones fail), and
    the heartbeat, which no component state changes (fleet/facts: 200 while the
    coordinator is alive, 503 only when it has been inactive for 10 s)."""
    for failon in ("heartbeat", "failed", "degraded"):
        expected = LIVENESS[condition][failon]
        if only_down and expected == "up" and failon != "heartbeat":
            continue
        status = sc.probe(failon)
        if not liveness_matches(expected, status):
            want = "200" if expected == "up" else "a 5xx (500)"
            raise Violation(
                "FLEET-AGT-LIVENESS",
                f"with check-ins {condition} (Fleet state {FLEET_STATE[condition]}),"
                f" /liveness?failon={failon} answered {status or 'nothing'}, expected {want}",
                sc.transcript(),
            )


@pytest.mark.requirement("FLEET-AGT-LIVENESS")
def test_liveness_follows_the_fleet_connection(agent_setup: AgentSetup) -> None:
    @conformance_property(max_examples=active().agent_examples, order=ORDERS, failing=FAILING)
    def run(order: list[str], failing: str) -> None:
        phases = [(c, condition_fault(c, failing)) for c in order]
        with running_agent(agent_setup, monitoring=True) as sc:
            if not settle_on(sc, OK):
                reenrolled(sc)
                exited(sc, "check in")
                not_reached(agent_setup, "a first check-in", liveness_window(agent_setup))
            baseline = {f: sc.probe(f) for f in ("heartbeat", "failed", "degraded")}
            if not liveness_matches("up", baseline["heartbeat"]):
                raise Violation(
                    "FLEET-AGT-LIVENESS",
                    "with the agent running and its check-ins answered,"
                    f" /liveness?failon=heartbeat answered {baseline['heartbeat'] or 'nothing'},"
                    " expected 200 (the heartbeat fails only when the agent's coordinator"
                    " has been inactive for 10 s)",
                    sc.transcript(),
                )
            # Liveness also fails for unhealthy components, which the mock cannot control:
            # then only the answers that must fail (and the heartbeat, which components do
            # not change) are judged (a 200 while the Fleet connection fails is wrong
            # whatever the components), and the rule is not judged in full.
            unhealthy = any(baseline[f] != 200 for f in ("failed", "degraded"))
            for condition, fault in phases:
                if not settle_on(sc, fault):
                    reenrolled(sc)
                    exited(sc, f"meet check-ins {condition}")
                    not_reached(agent_setup, f"check-ins {condition}", liveness_window(agent_setup))
                check_liveness(sc, condition, only_down=unhealthy)
            if unhealthy:
                not_judged(
                    f"/liveness was not 200 before any Fleet fault ({baseline}): the agent's"
                    " own components are unhealthy, so only the answers that must fail were"
                    " judged (and held)",
                    "start the agent so that its components are healthy with a working Fleet"
                    " server (check --agent-cmd and --agent-env, and the agent's output)",
                )

    run()


def liveness_window(setup: AgentSetup) -> float:
    """The window a liveness plan needs: per phase, up to two failing check-ins (each
    after a backoff), the long poll and the settle time."""
    timing = setup.timing
    per_phase = 2 * timing.at_most(timing.longest) + setup.checkin_hold + setup.settle
    return window_needed(timing, waits=(setup.checkin_hold,)) + (len(FLEET_STATE) + 1) * per_phase


def transient_faults(timing: Timing) -> st.SearchStrategy[Fault]:
    """Transient enrolment faults (fleet/facts: 429 too many requests, 5xx temporary,
    connection errors retried). Retry-After is in whole seconds, as HTTP sends it, and
    drawn around the floor (half and twice it) so that honouring it is visible."""
    after = sorted({max(1, math.ceil(timing.floor / 2)), max(1, math.ceil(2 * timing.floor))})
    return st.one_of(
        st.builds(Fault, st.sampled_from(["500", "502", "504", "reset", "hang"])),
        st.builds(Fault, st.sampled_from(["429", "503"]), st.sampled_from([None, *after])),
    )


def judge_transient(sc: Scenario, plan: list[Fault]) -> None:
    timing = sc.setup.timing
    arrivals = sc.mock.arrivals("enroll")
    for before, after in itertools.pairwise(arrivals):
        gap = after.at - before.at
        # A Retry-After says when the agent may come back, floor or not (RFC 9110 10.2.3).
        asked = before.fault.retry_after
        waited_for = float(asked) if asked is not None else timing.floor
        if before.fault.failing and gap < timing.at_least(waited_for):
            cause = f"Retry-After {asked} s" if asked else f"the backoff floor {timing.floor:g} s"
            raise Violation(
                "FLEET-AGT-ENROLL-BACKOFF",
                f"after enrolment answered {before.fault}, the agent retried after {gap:.3f} s,"
                f" sooner than {cause} allows",
                sc.transcript(),
            )
        hung = sc.setup.hang_limit if before.fault.kind == "hang" else 0.0
        limit = timing.at_most(max(timing.longest, float(before.fault.retry_after or 0))) + hung
        if before.fault.failing and gap > limit:
            raise Violation(
                "FLEET-AGT-ENROLL-BACKOFF",
                f"after enrolment answered {before.fault}, the agent waited {gap:.3f} s,"
                f" beyond the backoff cap {timing.cap:g} s (equal jitter at the cap waits"
                f" up to {timing.longest:g} s)",
                sc.transcript(),
            )


def play_transient(setup: AgentSetup, plan: list[Fault]) -> None:
    """One agent through ``plan`` on enrolment, judged by :func:`judge_transient`."""
    with running_agent(setup, enroll=plan) as sc:
        times = observe_until(sc, "enroll", len(plan) + 1, stop_early=False)
        judge_transient(sc, plan)
        judge_gave_up(sc, "enroll")
        if len(times) < 2:
            # Not one retry after the first failure: nothing was judged.
            exited(sc, "retry its enrolment")
            timing = setup.timing
            asked = max((float(f.retry_after or 0) for f in plan), default=0.0)
            need = window_needed(timing, waits=(max(timing.longest, asked), setup.hang_limit))
            not_reached(setup, "a retry after a failed enrolment", need)


def asked_later(timing: Timing) -> list[Fault]:
    """The plan every run plays once: a 503 whose Retry-After asks for twice the floor
    (longer than the first backoff wait, so ignoring it shows), then a reset connection
    (an error without any answer)."""
    return [Fault("503", max(1, math.ceil(2 * timing.floor))), Fault("reset")]


@pytest.mark.requirement("FLEET-AGT-ENROLL-BACKOFF")
def test_transient_enrolment_failures_back_off(agent_setup: AgentSetup) -> None:
    play_transient(agent_setup, asked_later(agent_setup.timing))
    plans = st.lists(transient_faults(agent_setup.timing), min_size=1, max_size=4)

    @conformance_property(max_examples=active().agent_examples, plan=plans)
    def run(plan: list[Fault]) -> None:
        play_transient(agent_setup, plan)

    run()
