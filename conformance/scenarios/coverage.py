"""Scenario features: which combinations of rule, step and capability change a drift run reached.

A *feature* names one judged exchange by what the model distinguishes about
it: the rule the reply was judged under, the step kind that produced the
message (``first`` for an agent's first message), the status the message
carried, and how the agent's capabilities had changed since its first
message (``same``, ``added``, ``removed``, ``both``).

Random generation reaches common features in every run but rare ones (a
capability added, then a gap whose message lacks only the newly required
sub-message) only now and then. :func:`required` lists, per focused rule,
the features every run must reach; :func:`template` builds a short explicit
scenario for each, which the drift tests play for every required feature the
generated examples missed. A run therefore reaches all of them whatever the
seed, and the report records what it reached.
"""

from __future__ import annotations

from dataclasses import dataclass

from conformance.scenarios.drift import (
    FIELD_CAPS,
    AgentPlan,
    Content,
    Focus,
    Kind,
    Scenario,
    Step,
    feature_key,
)
from conformance.wire import AgentCap

FIRST = "first"
SAME, ADDED, REMOVED = "same", "added", "removed"


@dataclass(frozen=True, order=True)
class Feature:
    """One judged exchange, as the model tells it apart from others."""

    rule: str
    kind: str
    content: str
    change: str

    def __str__(self) -> str:
        return feature_key(self.rule, self.kind, self.content, self.change)

    @classmethod
    def parse(cls, text: str) -> Feature:
        rule, kind, content, change = text.split("|")
        return cls(rule, kind, content, change.removeprefix("caps-"))


_PARTIAL = (Content.BARE.value, Content.DESCRIBED.value)
_CHANGES = (SAME, ADDED, REMOVED)
#: Steps that put a message out of sequence with the agent's last one.
_DRIFT_KINDS = (Kind.GAP, Kind.DUPLICATE, Kind.BACKWARDS, Kind.RESET)


def _drift_features(rule: str, kinds: tuple[Kind, ...]) -> set[Feature]:
    found = {Feature(rule, k.value, c, ch) for k in kinds for c in _PARTIAL for ch in _CHANGES}
    # Full status for the capabilities first declared is partial once one was added.
    found |= {Feature(rule, k.value, Content.FORMER.value, ADDED) for k in kinds}
    return found


def required(focus: Focus) -> frozenset[Feature]:
    """The features a run focused on ``focus`` must reach (none for the multi-instance run)."""
    if focus is Focus.NEW:
        return frozenset({Feature("SRV-FS-NEW", FIRST, Content.BARE.value, SAME)})
    if focus is Focus.CAPS:
        return frozenset({Feature("SRV-FS-CAPS", FIRST, Content.DESCRIBED.value, SAME)})
    if focus is Focus.GAP:
        # A gap in the first message on a new connection: state kept per agent, not per socket.
        reopened = {Feature("SRV-FS-GAP", Kind.REOPEN.value, c, SAME) for c in _PARTIAL}
        return frozenset(_drift_features("SRV-FS-GAP", _DRIFT_KINDS) | reopened)
    if focus is Focus.RECONNECT:
        return frozenset(_drift_features("SRV-FS-RECONNECT", (Kind.RECONNECT,)))
    if focus is Focus.SHOULD:
        next_ = Kind.NEXT.value
        quiet = {Feature("SRV-FS-QUIET", next_, c, ch) for c in _PARTIAL for ch in _CHANGES}
        full = Content.FULL.value
        quiet_full = {Feature("SRV-FS-QUIET-FULL", Kind.ANSWER.value, full, ch) for ch in _CHANGES}
        # Full status on drift is still full: a server judging by stale capabilities flags it.
        quiet_full |= {Feature("SRV-FS-QUIET-FULL", Kind.GAP.value, full, ch) for ch in _CHANGES}
        quiet_full.add(Feature("SRV-FS-QUIET-FULL", Kind.NEXT.value, Content.FORMER.value, REMOVED))
        return frozenset(quiet | quiet_full)
    return frozenset()


#: Template agents declare effective config; health is the capability added or removed.
_BASE_CAPS = AgentCap.REPORTS_STATUS | AgentCap.REPORTS_EFFECTIVE_CONFIG
_TOGGLED = FIELD_CAPS.index(AgentCap.REPORTS_HEALTH)


def template(feature: Feature) -> Scenario:
    """A short scenario whose last exchange is ``feature`` (against a server that answers)."""
    content = Content(feature.content)
    if feature.kind == FIRST:
        caps = _BASE_CAPS | AgentCap.REPORTS_HEALTH
        return Scenario((AgentPlan(caps, 0, content, 0),), ())
    first_caps = _BASE_CAPS | (AgentCap.REPORTS_HEALTH if feature.change == REMOVED else 0)
    agent = AgentPlan(first_caps, 0, Content.FULL, 0)
    steps = [Step(0, Kind.ANSWER, Content.FULL, 0)]
    if feature.change in (ADDED, REMOVED):
        steps.append(Step(0, Kind.CAPS, Content.FULL, _TOGGLED))
    kind = Kind(feature.kind)
    if kind is Kind.DUPLICATE:
        steps.append(Step(0, Kind.NEXT, content, 0))
    steps.append(Step(0, kind, content, 2 if kind in (Kind.GAP, Kind.REOPEN) else 1))
    return Scenario((agent,), tuple(steps))


@dataclass(frozen=True)
class FeatureRecord:
    """What one drift test reached: for the report's ``coverage`` and the self-test."""

    rule: str
    transport: str
    required: frozenset[Feature]
    reached: set[str]
    #: Features the generated examples reached before any template was played.
    generated: set[str]

    def to_json(self) -> dict[str, object]:
        required = {str(f) for f in self.required}
        return {
            "rule": self.rule,
            "transport": self.transport,
            "required": len(required),
            "reached": sorted(self.reached),
            "by_template": sorted(self.reached - self.generated),
            "missing": sorted(required - self.reached),
        }
