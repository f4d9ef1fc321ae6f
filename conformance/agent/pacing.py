"""An OpAMP agent's own clock, as the suite learns it, and scenario windows sized to it.

An agent on the spec's default timing polls every 30 s and waits at least
30 s before retrying a failed exchange, which would not fit the quick
profile's 30 s window. So the scenarios make the agent speak sooner where the
protocol allows (a ReportFullState flag makes it send at once; an agent that
declares ReportsHeartbeat and AcceptsOpAMPConnectionSettings is offered a
:data:`OFFER` second heartbeat on the first reply), and size each wait to what
its rule needs from what was learned of the agent so far:

- its transport and capabilities, from its first message;
- its poll period, from the gap after a reply that asked for nothing (measured
  in the scenario under way, or learned from an earlier one without an offer);
- its first retry, from the gap after a failed exchange.

A rule whose scenario cannot fit ``--agent-window`` is *not judged*, with the
window it needs as the remedy, as soon as that is known (before the launch
when it depends only on the options). :func:`side_by_side` runs independent
scenarios at once. What is learned is kept per process (per pytest-xdist
worker), keyed by the agent setup.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TypeVar

from _pytest.outcomes import Skipped

from conformance.agent.opamp_scenario import OpAMPScenario
from conformance.agent.scenario import AgentSetup
from conformance.model.agent_timing import (
    SPEC_POLL,
    describe_clock,
    window_needed,
    window_remedy,
)
from conformance.model.opamp_agent import (
    Received,
    offered_heartbeat,
    poll_gaps,
    takes_heartbeat_offer,
)
from conformance.outcomes import NotApplicable, OutOfScope, not_applicable, not_judged
from conformance.verdicts import Violation, Violations, violations_of

#: The heartbeat interval (seconds) offered to agents that take one, so that every
#: message a scenario needs comes within about a second of the reply before it.
OFFER = 1
#: Replies after which the agent's next attempt is a retry of a failed exchange (no delay
#: asked): the gap to it is the agent's own retry wait.
RETRIED = frozenset({"429", "503", "500", "garbage"})


@dataclass
class Clock:
    """What the suite learned of one agent under test in this process."""

    transport: str | None = None
    #: What the agent did first, in words (evidence for a *not applicable*).
    contact: str = ""
    capabilities: int | None = None
    #: Its own poll period (no heartbeat offered), the longest gap seen.
    period: float | None = None
    #: Its shortest wait before retrying a failed exchange.
    retry: float | None = None
    #: Scenarios learned from.
    scenarios: int = 0

    @property
    def takes_offer(self) -> bool:
        return self.capabilities is not None and takes_heartbeat_offer(self.capabilities)


_CLOCKS: dict[int, Clock] = {}


def clock_of(setup: AgentSetup) -> Clock:
    return _CLOCKS.setdefault(id(setup), Clock())


def learn(setup: AgentSetup, sc: OpAMPScenario) -> Clock:
    """Add what ``sc`` showed of the agent to what is known of it, and return that."""
    clock = clock_of(setup)
    seen = sc.messages()
    if seen:
        clock.transport = seen[0].transport
        if seen[0].message is not None:
            clock.capabilities = seen[0].message.capabilities
    elif sc.mock.attempts():
        clock.transport = "ws"
    if clock.transport is not None and not clock.contact:
        clock.contact = sc.first_contact()
    if not any(offered_heartbeat(r) for r in seen):
        gaps = poll_gaps(seen)
        if gaps:
            clock.period = max(clock.period or 0.0, max(gaps))
    events = sc.events()
    for item in seen:
        if item.reply.kind not in RETRIED or item.reply.seconds is not None:
            continue
        later = [t for t in events if t > item.at]
        if later:
            waited = later[0] - item.at
            clock.retry = waited if clock.retry is None else min(clock.retry, waited)
    clock.scenarios += 1
    return clock


def transport_of(setup: AgentSetup, sc: OpAMPScenario) -> str:
    """How the agent of ``sc`` speaks ("http" or "ws"), learned from its first contact."""
    clock = learn(setup, sc)
    return clock.transport or "http"


def require_transport(setup: AgentSetup, wanted: str, rule: str) -> None:
    """*Not applicable* when the agent was already seen to speak the other transport."""
    clock = clock_of(setup)
    if clock.transport is not None and clock.transport != wanted:
        not_applicable(_other_transport(clock.transport, wanted, rule), clock.contact)


def check_transport(setup: AgentSetup, sc: OpAMPScenario, wanted: str, rule: str) -> None:
    """*Not applicable* when the agent of ``sc`` speaks the other transport."""
    transport = transport_of(setup, sc)
    if transport != wanted:
        not_applicable(_other_transport(transport, wanted, rule), sc.first_contact())


def _other_transport(seen: str, wanted: str, rule: str) -> str:
    names = {"http": "plain HTTP", "ws": "WebSocket"}
    return f"{rule} is a {names[wanted]} rule and the agent speaks {names[seen]}"


@dataclass
class Shortfall:
    """A scenario that could not get what its rule needs within the window."""

    reason: str
    remedy: str
    #: Seconds from the launch the scenario needs.
    need: float = 0.0

    def raise_(self) -> None:
        not_judged(self.reason, self.remedy)


def period_estimate(setup: AgentSetup, sc: OpAMPScenario | None) -> tuple[float | None, bool]:
    """The agent's poll period for sizing ``sc`` (None: unknown), and whether it is the
    heartbeat interval offered: measured in ``sc`` if it can be, else :data:`OFFER` for
    an agent taking offers in a scenario that makes one, else learned earlier."""
    clock = clock_of(setup)
    if sc is not None:
        seen = sc.messages()
        gaps = poll_gaps(seen)
        offered = any(offered_heartbeat(r) for r in seen)
        if gaps:
            return max(gaps), offered
        if offered:
            return float(OFFER), True
    return clock.period, False


def upfront(setup: AgentSetup, rule: str, what: str, need: float) -> None:
    """*Not judged* before any launch when the rule needs more than ``--agent-window``."""
    if need > setup.window:
        not_judged(
            f"{rule} needs about {need:.0f} s from the agent's launch ({what}); --agent-window"
            f" is {setup.window:g} s",
            window_remedy(need),
        )


def first_retry(setup: AgentSetup) -> float | None:
    """The agent's first retry wait as measured, or None (then twice the floor is assumed)."""
    return clock_of(setup).retry


def wait_sized(
    setup: AgentSetup,
    sc: OpAMPScenario,
    count: int,
    *,
    polls: int,
    waits: tuple[float, ...] = (),
    what: str,
) -> tuple[list[Received], Shortfall | None]:
    """Messages once ``count`` arrived (or the agent exited), with no shortfall; or, as soon
    as the poll period shows that ``polls`` periods and ``waits`` will not fit the window
    (or once the window ended), what arrived and the shortfall to report after judging it."""
    timing = setup.timing
    while True:
        seen = sc.messages()
        if len(seen) >= count or not sc.agent.running():
            return seen, None
        period, offered = period_estimate(setup, sc)
        if period is not None:
            need = window_needed(timing, polls=polls, period=period, waits=waits)
            if need > setup.window:
                return seen, _short(setup, what, need, period, offered, len(seen), count)
        if time.monotonic() >= sc.deadline:
            assumed = SPEC_POLL if period is None else period
            missing = count - len(seen)
            need = setup.window + window_needed(timing, polls=missing, period=assumed)
            return seen, _short(setup, what, need, period, offered, len(seen), count)
        time.sleep(0.01)


def _short(
    setup: AgentSetup,
    what: str,
    need: float,
    period: float | None,
    offered: bool,
    got: int,
    count: int,
) -> Shortfall:
    return Shortfall(
        f"to {what} the scenario needs {count} messages ({got} seen) and about {need:.0f} s"
        f" from the launch; {describe_clock(period, offered)}; --agent-window is"
        f" {setup.window:g} s",
        window_remedy(need),
        need,
    )


T = TypeVar("T")


@dataclass
class _Outcomes:
    """What the scenarios of :func:`side_by_side` ended with, by weight of their verdict."""

    violations: list[Violation] = field(default_factory=list)
    #: Harness errors (anything that is neither a finding nor a skip), and a timeout.
    errors: list[BaseException] = field(default_factory=list)
    #: *Not judged*, and a plain skip (which the plugin reads as not judged).
    not_judged: list[Skipped] = field(default_factory=list)
    #: *Not applicable*, then *out of scope*: they outweigh nothing else.
    not_applicable: list[Skipped] = field(default_factory=list)
    out_of_scope: list[Skipped] = field(default_factory=list)

    def add(self, exc: BaseException) -> None:
        found = violations_of(exc)
        if found:
            self.violations.extend(found)
        elif isinstance(exc, NotApplicable):
            self.not_applicable.append(exc)
        elif isinstance(exc, OutOfScope):
            self.out_of_scope.append(exc)
        elif isinstance(exc, Skipped):
            self.not_judged.append(exc)
        else:
            self.errors.append(exc)

    def raise_weightiest(self) -> None:
        """Findings first (they outrank "could not judge"), then a harness error, then
        *not judged*, *not applicable*, *out of scope* (the plugin's order of weight)."""
        if self.violations:
            if len(self.violations) == 1:
                raise self.violations[0]
            raise Violations(self.violations)
        for kind in (self.errors, self.not_judged, self.not_applicable, self.out_of_scope):
            if kind:
                raise kind[0]


def side_by_side(calls: list[Callable[[], T]], timeout: float) -> list[T]:
    """Run independent scenarios at once (each in its own thread, bounded by ``timeout``
    seconds in all); then raise every violation together, else a harness error (a scenario
    still running after ``timeout`` is one), else the first *not judged*, else the first
    *not applicable* or *out of scope*; return the results in order when all judged and
    held.

    The bound is real: after ``timeout`` this returns (raising :class:`TimeoutError`)
    without waiting for the scenarios still running. Each scenario bounds its own waits
    (``--agent-start-timeout``, ``--agent-window``) and reaps its agent when it ends, so
    the threads left behind end on their own; the interpreter joins them before it exits.
    """
    outcomes = _Outcomes()
    results: list[T] = []
    pool = ThreadPoolExecutor(max_workers=len(calls), thread_name_prefix="scenario")
    try:
        futures = [pool.submit(call) for call in calls]
        _, pending = wait(futures, timeout=timeout)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    for future in futures:
        if future in pending:
            continue
        exc = future.exception()
        if exc is None:
            results.append(future.result())
        else:
            outcomes.add(exc)
    if pending:
        outcomes.errors.insert(
            0, TimeoutError(f"{len(pending)} scenario(s) still running after {timeout:g} s")
        )
    outcomes.raise_weightiest()
    return results
