"""Drift scenarios: several agents, interleaved, whose messages drift from what the server saw.

A scenario is a list of agents (capabilities, first message) and a list of
steps (contiguous message, gap, duplicate, backwards, reset to 0, goodbye and
reconnect, capability change, socket reopen, answering a ReportFullState).
:class:`DriftRun` plays one scenario against a target and judges the
ReportFullState bit of every reply with the model.

Each MUST rule is checked by its own run ("focus"), so that every finding
names one cause and shrinks to the shortest conversation that shows it:

- SRV-FS-GAP and SRV-FS-RECONNECT are judged on every partial message of a
  known agent (a server that takes a message lacking a capability-required
  sub-message for full status fails them, as the rules say);
- SRV-FS-NEW is judged on first messages without ``agent_description``, and
  SRV-FS-CAPS on first messages that carry ``agent_description`` but lack a
  sub-message a declared capability requires, so that a server blind to
  capabilities is named by SRV-FS-CAPS, not SRV-FS-NEW.

Leniency, to keep false positives out: the first message on a reopened
connection is never a SHOULD finding (a server may treat a closed socket as
a disconnect); a duplicate uses the agent's current uid.

SHOULD rules (SRV-FS-QUIET, SRV-FS-QUIET-FULL) are tallied over all examples
of a run and reported once with counts.

A reply carrying error_response is not judged (the agent's state is then
unknown to the model until it sends full status again); everything else the
run saw still is. The :class:`Tally` counts, per rule, the replies that gave
it a chance to be broken: a run in which the focused rule never had one (say,
every reply was an error_response) judged nothing, and
:meth:`Tally.require_judged` ends it as *not judged*.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import strategies as st

from conformance.checks import Refusals, Transcript, converse, error_type_name
from conformance.drivers.factory import OpAMPDriver
from conformance.drivers.ws import WsDriver
from conformance.messages import full_status, goodbye, partial_status
from conformance.model.fullstate import (
    UNKNOWN,
    AgentHistory,
    FlagExpectation,
    Judgement,
    expected_report_full_state,
    is_full_status,
    next_history,
    required_status_fields,
)
from conformance.outcomes import not_judged
from conformance.transcript import describe_agent_message
from conformance.verdicts import Violation
from conformance.wire import AgentCap, AgentToServer, ServerFlag

#: Capabilities that make a status sub-message mandatory.
FIELD_CAPS = (
    AgentCap.REPORTS_HEALTH,
    AgentCap.REPORTS_EFFECTIVE_CONFIG,
    AgentCap.REPORTS_REMOTE_CONFIG,
    AgentCap.REPORTS_PACKAGE_STATUSES,
    AgentCap.REPORTS_AVAILABLE_COMPONENTS,
    AgentCap.REPORTS_CONNECTION_SETTINGS_STATUS,
)
MAX_AGENTS = 3
AGENT_NAMES = "ABC"
_FIELD_MASK = sum(FIELD_CAPS)


def capability_change(first: int, now: int) -> str:
    """How the status-bearing capabilities moved from ``first`` to ``now``."""
    added = now & _FIELD_MASK & ~first
    removed = first & _FIELD_MASK & ~now
    if added and removed:
        return "both"
    return "added" if added else "removed" if removed else "same"


def feature_key(rule: str, kind: str, content: str, change: str) -> str:
    """A scenario feature as text (see :mod:`conformance.scenarios.coverage`)."""
    return f"{rule}|{kind}|{content}|caps-{change}"


class Content(enum.Enum):
    """What status a message carries."""

    FULL = "full"
    #: agent_description and some, not all, capability sub-messages.
    DESCRIBED = "described"
    #: no agent_description (a heartbeat when no sub-message at all).
    BARE = "bare"
    #: full status for the capabilities the agent declared first: partial once
    #: it has added one since, full (with extras) when it has only dropped some.
    FORMER = "former"


class Kind(enum.Enum):
    """What an agent does in one step."""

    NEXT = "next"  # contiguous message
    ANSWER = "answer"  # contiguous full status (answering ReportFullState)
    GAP = "gap"  # forward gap (arg 2..5; 0: just past the previous message's seq)
    DUPLICATE = "duplicate"  # the last message again, byte for byte
    BACKWARDS = "backwards"  # seq - arg
    RESET = "reset"  # seq 0
    GOODBYE = "goodbye"  # contiguous agent_disconnect (WebSocket: socket closed after)
    RECONNECT = "reconnect"  # goodbye, then seq 0
    CAPS = "caps"  # contiguous message with other capabilities
    REOPEN = "reopen"  # close and reopen the connection, then contiguous (arg 2..5: a gap)


class Focus(enum.Enum):
    """Which rule a run judges at MUST level (SHOULD: tally the SHOULD rules only)."""

    NEW = "SRV-FS-NEW"
    GAP = "SRV-FS-GAP"
    RECONNECT = "SRV-FS-RECONNECT"
    CAPS = "SRV-FS-CAPS"
    SHOULD = "should"
    #: Messages spread over instances: every MUST rule raises; spurious flags
    #: right after an instance switch are tallied as SRV-FS-STATELESS.
    STATELESS = "SRV-FS-STATELESS"


@dataclass(frozen=True)
class AgentPlan:
    caps: int
    first_seq: int
    first: Content
    mask: int

    def __repr__(self) -> str:
        return (
            f"Agent(caps={self.caps:#x}, first_seq={self.first_seq}, first={self.first.value},"
            f" mask={self.mask})"
        )


@dataclass(frozen=True)
class Step:
    agent: int
    kind: Kind
    content: Content
    arg: int

    def __repr__(self) -> str:
        name = AGENT_NAMES[self.agent % MAX_AGENTS]
        return f"{name}:{self.kind.value}/{self.arg}:{self.content.value}"


@dataclass(frozen=True)
class Scenario:
    agents: tuple[AgentPlan, ...]
    steps: tuple[Step, ...]

    def __repr__(self) -> str:
        return f"Scenario(agents={list(self.agents)}, steps={list(self.steps)})"


# --- strategies --------------------------------------------------------------

_KIND_WEIGHTS: dict[Focus, list[Kind]] = {
    Focus.NEW: [Kind.NEXT, Kind.ANSWER, Kind.GAP, Kind.CAPS],
    Focus.GAP: [
        Kind.NEXT,
        Kind.GAP,
        Kind.GAP,
        Kind.GAP,
        Kind.GAP,
        Kind.DUPLICATE,
        Kind.DUPLICATE,
        Kind.DUPLICATE,
        Kind.BACKWARDS,
        Kind.BACKWARDS,
        Kind.RESET,
        Kind.ANSWER,
        Kind.GOODBYE,
        Kind.CAPS,
        Kind.REOPEN,
    ],
    Focus.RECONNECT: [
        Kind.NEXT,
        Kind.RECONNECT,
        Kind.RECONNECT,
        Kind.RECONNECT,
        Kind.ANSWER,
        Kind.GOODBYE,
        Kind.RESET,
        Kind.REOPEN,
    ],
    Focus.CAPS: [Kind.NEXT, Kind.ANSWER, Kind.CAPS],
    Focus.STATELESS: [
        Kind.NEXT,
        Kind.NEXT,
        Kind.NEXT,
        Kind.ANSWER,
        Kind.GAP,
        Kind.DUPLICATE,
        Kind.DUPLICATE,
        Kind.BACKWARDS,
        Kind.RESET,
        Kind.RECONNECT,
        Kind.CAPS,
    ],
    Focus.SHOULD: [
        Kind.NEXT,
        Kind.NEXT,
        Kind.NEXT,
        Kind.ANSWER,
        Kind.ANSWER,
        Kind.ANSWER,
        Kind.GAP,
        Kind.DUPLICATE,
        Kind.BACKWARDS,
        Kind.RESET,
        Kind.GOODBYE,
        Kind.RECONNECT,
        Kind.CAPS,
        Kind.REOPEN,
    ],
}
#: Drift runs: partial status twice as often as full, and former status too.
_MOSTLY_PARTIAL = [
    Content.BARE,
    Content.BARE,
    Content.DESCRIBED,
    Content.DESCRIBED,
    Content.FULL,
    Content.FORMER,
]
_CONTENT_WEIGHTS: dict[Focus, list[Content]] = {
    Focus.NEW: [Content.BARE, Content.FULL, Content.DESCRIBED],
    Focus.GAP: _MOSTLY_PARTIAL,
    Focus.RECONNECT: _MOSTLY_PARTIAL,
    Focus.CAPS: [Content.DESCRIBED, Content.BARE, Content.FULL],
    Focus.STATELESS: [Content.BARE, Content.BARE, Content.DESCRIBED, Content.FULL, Content.FORMER],
    Focus.SHOULD: [Content.BARE, Content.FULL, Content.DESCRIBED, Content.FORMER],
}
_FIRST_WEIGHTS: dict[Focus, list[Content]] = {
    Focus.NEW: [Content.BARE, Content.BARE, Content.FULL, Content.DESCRIBED],
    Focus.GAP: [Content.FULL, Content.BARE, Content.DESCRIBED],
    Focus.RECONNECT: [Content.FULL, Content.BARE, Content.DESCRIBED],
    Focus.CAPS: [Content.DESCRIBED, Content.DESCRIBED, Content.FULL, Content.BARE],
    Focus.STATELESS: [Content.FULL, Content.BARE, Content.DESCRIBED],
    Focus.SHOULD: [Content.FULL, Content.BARE, Content.DESCRIBED],
}


@st.composite
def _capabilities(draw: st.DrawFn, focus: Focus) -> int:
    caps = AgentCap.REPORTS_STATUS | draw(st.integers(0, AgentCap.ALL))
    if focus is Focus.CAPS:
        caps |= draw(st.sampled_from(FIELD_CAPS))
    return caps


def agent_plans(focus: Focus) -> st.SearchStrategy[AgentPlan]:
    return st.builds(
        AgentPlan,
        caps=_capabilities(focus),
        # Mostly 0 or 1; 3 and 7 put agents out of step with each other.
        first_seq=st.sampled_from([0, 1, 3, 7]),
        first=st.sampled_from(_FIRST_WEIGHTS[focus]),
        mask=st.integers(0, 63),
    )


#: Step arguments: 0 and 1 make a GAP land just past the previous message's
#: sequence_num (often another agent's); 2..5 skip that many numbers.
_ARGS = (0, 1, 2, 3, 4, 5, 0, 1)


def steps(focus: Focus) -> st.SearchStrategy[Step]:
    """Steps drawn as one integer each: one Hypothesis choice per step keeps
    generation and shrinking cheap (0 decodes to the simplest step)."""
    kinds, contents = _KIND_WEIGHTS[focus], _CONTENT_WEIGHTS[focus]
    size = MAX_AGENTS * len(kinds) * len(contents) * len(_ARGS)

    def decode(code: int) -> Step:
        code, agent = divmod(code, MAX_AGENTS)
        code, kind = divmod(code, len(kinds))
        arg, content = divmod(code, len(contents))
        return Step(agent, kinds[kind], contents[content], _ARGS[arg])

    return st.integers(0, size - 1).map(decode)


#: Rules whose violations need agents interleaved: at least two agents per scenario.
_INTERLEAVED = (Focus.GAP, Focus.SHOULD)


def scenarios(focus: Focus, max_steps: int) -> st.SearchStrategy[Scenario]:
    least = 2 if focus in _INTERLEAVED else 1
    # SHOULD rules are tallied, never shrunk: long conversations give more chances.
    shortest = max_steps if focus is Focus.SHOULD else 2
    return st.builds(
        Scenario,
        agents=st.lists(agent_plans(focus), min_size=least, max_size=MAX_AGENTS).map(tuple),
        steps=st.lists(steps(focus), min_size=shortest, max_size=max_steps).map(tuple),
    )


# --- messages ------------------------------------------------------------------


def build_message(
    uid: bytes, seq: int, caps: int, content: Content, mask: int, first_caps: int = 0
) -> AgentToServer:
    """A message with the status ``content`` asks for; ``mask`` picks the partial fields.

    ``first_caps``: the capabilities the agent declared first (for ``FORMER``).
    """
    if content is Content.FULL:
        return full_status(uid, seq, caps)
    if content is Content.FORMER:
        return partial_status(uid, seq, caps, required_status_fields(first_caps or caps))
    extras = [f for f in required_status_fields(caps) if f != "agent_description"]
    chosen = [f for i, f in enumerate(extras) if mask >> i & 1]
    if content is Content.DESCRIBED:
        if extras and len(chosen) == len(extras):
            chosen = chosen[1:]
        return partial_status(uid, seq, caps, ["agent_description", *chosen])
    return partial_status(uid, seq, caps, chosen)


# --- the run -----------------------------------------------------------------


@dataclass
class Tally:
    """Counts over every example of a test: SHOULD chances and violations, MUST chances.

    ``chances`` (SHOULD rules) and ``must_chances`` (MUST rules) count the
    replies that could have broken each rule; ``refusals`` the replies judged
    and those refused with error_response.
    """

    chances: dict[str, int] = field(default_factory=dict)
    violations: dict[str, int] = field(default_factory=dict)
    evidence: dict[str, str] = field(default_factory=dict)
    must_chances: dict[str, int] = field(default_factory=dict)
    refusals: Refusals = field(default_factory=Refusals)
    #: Scenario features judged (:mod:`conformance.scenarios.coverage`), as text.
    reached: set[str] = field(default_factory=set)

    def chance(self, rule: str) -> None:
        """One reply on which MUST ``rule`` was judged (held or not)."""
        self.must_chances[rule] = self.must_chances.get(rule, 0) + 1

    def judged_rules(self, focus: Focus) -> list[str]:
        """The rules a run with ``focus`` judges; each needs a chance to count as judged."""
        if focus is Focus.SHOULD:
            return ["SRV-FS-QUIET", "SRV-FS-QUIET-FULL"]
        return [focus.value]

    def unjudged(self, focus: Focus) -> list[str]:
        """The rules of ``focus`` that no reply gave a chance to be broken."""
        counts = self.chances if focus in (Focus.SHOULD, Focus.STATELESS) else self.must_chances
        return [rule for rule in self.judged_rules(focus) if not counts.get(rule)]

    def require_judged(self, focus: Focus) -> None:
        """End the test as *not judged* when a rule of ``focus`` never had a reply to judge."""
        missing = self.unjudged(focus)
        if not missing:
            return
        what = " and ".join(missing)
        if not self.refusals.judged:
            self.refusals.require_judged(what)  # every reply refused: says so and ends
        refused = (
            f"; {self.refusals.describe()} left agents unjudged" if self.refusals.refused else ""
        )
        not_judged(
            f"no reply gave {what} a chance to be judged: {self.refusals.judged} replies judged"
            f" by the model, none of the kind the rule is about{refused}",
            "run with a larger --profile (more examples), or with --hypothesis-seed set to"
            " another value",
        )

    def count(self, rule: str, violated: bool, transcript: str) -> None:
        self.chances[rule] = self.chances.get(rule, 0) + 1
        if violated:
            self.violations[rule] = self.violations.get(rule, 0) + 1
            best = self.evidence.get(rule)
            if best is None or len(transcript) < len(best):
                self.evidence[rule] = transcript

    def findings(self) -> list[Violation]:
        found = []
        for rule, bad in sorted(self.violations.items()):
            what = _CHANCE_NAMES.get(rule, "messages")
            found.append(
                Violation(
                    rule,
                    f"ReportFullState set on {bad} of {self.chances[rule]} {what}",
                    "shortest conversation showing it:\n" + self.evidence[rule],
                )
            )
        return found


_CHANCE_NAMES = {
    "SRV-FS-QUIET": "contiguous messages with partial status (no drift)",
    "SRV-FS-STATELESS": "contiguous messages sent to another instance than the one before",
    "SRV-FS-QUIET-FULL": "messages that carried full status",
}


@dataclass
class _Agent:
    name: str
    plan: AgentPlan
    driver: OpAMPDriver
    uid: bytes
    caps: int
    seq: int = -1
    last: AgentToServer | None = None
    #: What the last message carried (a duplicate carries the same).
    last_content: Content = Content.FULL
    history: AgentHistory = UNKNOWN
    #: The model cannot judge this agent until it sends full status again
    #: (after an error reply or a server-assigned uid).
    uncertain: bool = False
    #: The agent's connection was just closed and reopened: a server may take
    #: that as a disconnect and ask for full status, so no SHOULD finding then.
    reconnected: bool = False


Opener = Callable[[], OpAMPDriver]


class DriftRun:
    """Plays one scenario and judges every reply; raises at the first focused MUST violation."""

    def __init__(self, opener: Opener, focus: Focus, tally: Tally, new_uid: Callable[[], bytes]):
        self.opener = opener
        self.focus = focus
        self.tally = tally
        self.new_uid = new_uid
        self.transcript = Transcript()
        self.lines: list[str] = []
        self.last_seq_any = 0
        #: The step kind and content of the message being exchanged (for features).
        self._doing: tuple[str, Content] = ("first", Content.FULL)

    def play(self, scenario: Scenario) -> None:
        agents = [
            _Agent(AGENT_NAMES[i], plan, self.opener(), self.new_uid(), plan.caps)
            for i, plan in enumerate(scenario.agents)
        ]
        try:
            for agent in agents:
                self._first(agent)
            previous = agents[-1]
            for step in scenario.steps:
                agent = agents[step.agent % len(agents)]
                if step.kind is Kind.GAP and step.arg < 2 and agent is previous:
                    # The aligned gap is about per-agent state: another agent jumps
                    # to just past the previous message's sequence_num.
                    agent = agents[(agents.index(agent) + 1) % len(agents)]
                self._step(agent, step)
                previous = agent
        finally:
            for agent in agents:
                agent.driver.close()

    # -- steps --

    def _first(self, agent: _Agent) -> None:
        plan = agent.plan
        self._doing = ("first", plan.first)
        self._send(agent, plan.first_seq, plan.first, plan.mask, first=True)

    def _step(self, agent: _Agent, step: Step) -> None:
        kind, content, arg = step.kind, step.content, step.arg
        mask = agent.plan.mask ^ arg
        shown = Content.FULL if kind is Kind.ANSWER else content
        self._doing = (kind.value, agent.last_content if kind is Kind.DUPLICATE else shown)
        if kind is Kind.NEXT:
            self._send(agent, agent.seq + 1, content, mask)
        elif kind is Kind.ANSWER:
            self._send(agent, agent.seq + 1, Content.FULL, mask)
        elif kind is Kind.GAP:
            target = agent.seq + arg if arg >= 2 else self.last_seq_any + 1
            if target == agent.seq + 1:
                target += 1
            self._send(agent, target, content, mask)
        elif kind is Kind.DUPLICATE:
            assert agent.last is not None
            again = AgentToServer()
            again.CopyFrom(agent.last)
            again.instance_uid = agent.uid  # the uid in use, should the server have changed it
            self._exchange(agent, again)
        elif kind is Kind.BACKWARDS:
            self._send(agent, max(0, agent.seq - max(arg, 1)), content, mask)
        elif kind is Kind.RESET:
            self._send(agent, 0, content, mask)
        elif kind is Kind.GOODBYE:
            self._goodbye(agent)
        elif kind is Kind.RECONNECT:
            self._goodbye(agent)
            self._send(agent, 0, content, mask)
        elif kind is Kind.CAPS:
            agent.caps ^= FIELD_CAPS[arg % len(FIELD_CAPS)]
            self._send(agent, agent.seq + 1, content, mask)
        elif kind is Kind.REOPEN:
            agent.driver.close()
            agent.reconnected = True
            self.lines.append(f"    {agent.name}: connection closed and reopened")
            # arg 2..5: the first message on the new connection skips numbers too.
            self._send(agent, agent.seq + (arg if arg >= 2 else 1), content, mask)

    def _goodbye(self, agent: _Agent) -> None:
        self._exchange(agent, goodbye(agent.uid, agent.seq + 1, agent.caps))
        if isinstance(agent.driver, WsDriver):
            agent.driver.close()
            agent.reconnected = True
            self.lines.append(f"    {agent.name}: WebSocket closed after goodbye")

    def _send(
        self, agent: _Agent, seq: int, content: Content, mask: int, *, first: bool = False
    ) -> None:
        msg = build_message(agent.uid, seq, agent.caps, content, mask, agent.plan.caps)
        agent.last_content = content
        self._exchange(agent, msg, first=first)

    # -- judging --

    def _exchange(self, agent: _Agent, msg: AgentToServer, *, first: bool = False) -> None:
        driver = agent.driver
        sockets = getattr(driver, "connects", 0)
        reply = converse(self.transcript, lambda: driver.send(msg), driver.close)
        if sockets and getattr(driver, "connects", 0) != sockets:
            # The server had closed the socket (a recycled connection): this message went
            # on a new one, where a server may ask for full status.
            agent.reconnected = True
            self.lines.append(f"    {agent.name}: the server had closed the socket; reopened")
        agent.last = msg
        agent.seq = msg.sequence_num
        self.last_seq_any = msg.sequence_num
        flag = bool(reply.flags & ServerFlag.REPORT_FULL_STATE)
        head = f"#{len(self.lines) + 1:<3} {agent.name} {driver.transport:4} >> "
        head += describe_agent_message(msg) + f" | << flag {'SET' if flag else 'unset'}"
        if reply.HasField("error_response"):
            agent.uncertain = True
            self.tally.refusals.refuse(reply)
            kind = error_type_name(reply.error_response.type)
            self.lines.append(head + f" | error_response (type {kind}): not judged")
            return
        if agent.uncertain:
            if not is_full_status(msg):
                self.lines.append(head + " | not judged (agent state unknown to the model)")
                return
            agent.uncertain = False
        judgement = expected_report_full_state(agent.history, msg)
        if agent.reconnected and judgement.expectation is FlagExpectation.SHOULD_NOT_SET:
            judgement = Judgement(FlagExpectation.MAY, None, "first message on a new connection")
        agent.reconnected = False
        self.tally.refusals.judge()
        self.lines.append(head + " | " + _expectation_text(judgement, flag))
        self._reach(agent, msg, judgement, first)
        self._judge(agent, msg, judgement, flag, first)
        agent.history = next_history(agent.history, msg, flag)
        new_uid = reply.agent_identification.new_instance_uid
        if new_uid:
            agent.uid = new_uid
            agent.uncertain = True
            self.lines.append(f"    {agent.name}: adopted new instance_uid {new_uid[:4].hex()}")

    def _reach(self, agent: _Agent, msg: AgentToServer, judgement: Judgement, first: bool) -> None:
        """Record the judged exchange's scenario feature (rule, step, status, capability change)."""
        rule = judgement.rule
        if rule is None:
            return
        if first and rule == "SRV-FS-NEW" and msg.HasField("agent_description"):
            rule = "SRV-FS-CAPS"
        kind, content = self._doing
        change = capability_change(agent.plan.caps, agent.caps)
        self.tally.reached.add(feature_key(rule, kind, content.value, change))

    def _judge(
        self, agent: _Agent, msg: AgentToServer, judgement: Judgement, flag: bool, first: bool
    ) -> None:
        rule = judgement.rule
        if judgement.expectation is FlagExpectation.SHOULD_NOT_SET and rule is not None:
            if self.focus is Focus.SHOULD:
                self.tally.count(rule, flag, self.render())
            elif (
                self.focus is Focus.STATELESS
                and rule == "SRV-FS-QUIET"
                and getattr(agent.driver, "switched", False)
            ):
                self.tally.count(Focus.STATELESS.value, flag, self.render())
            return
        if judgement.expectation is not FlagExpectation.MUST_SET or rule is None:
            return
        if first and rule == "SRV-FS-NEW" and msg.HasField("agent_description"):
            # Partial only through a capability-required sub-message.
            rule = "SRV-FS-CAPS"
        self.tally.chance(rule)
        if flag:
            return
        if rule == self.focus.value or self.focus is Focus.STATELESS:
            raise Violation(
                rule,
                f"agent {agent.name} was not asked for full status: {judgement.reason}",
                self.render(),
            )

    def render(self) -> str:
        legend = (
            "one line per exchange: agent, transport, what it sent, the flag seen,"
            " what the rules expect"
        )
        return "\n".join([legend, *self.lines])


def _expectation_text(judgement: Judgement, flag: bool) -> str:
    expectation = judgement.expectation
    why = f" ({judgement.rule}: {judgement.reason})" if judgement.rule else f" ({judgement.reason})"
    if expectation is FlagExpectation.MUST_SET:
        verdict = "ok" if flag else "VIOLATION; would pass: flag set"
        return f"expected: must be set{why} -> {verdict}"
    if expectation is FlagExpectation.SHOULD_NOT_SET:
        verdict = "ok" if not flag else "SHOULD finding; would pass: flag unset"
        return f"expected: should not be set{why} -> {verdict}"
    return f"expected: either{why} -> ok"
