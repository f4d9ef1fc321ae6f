"""Verdicts and the exceptions tests raise to report a broken requirement.

A test reports a broken rule by raising :class:`Violation` (or
:class:`Violations` for several at once, see :class:`Findings`). The pytest
plugin turns each into a verdict from the requirement's level and the
``--strict`` switch. Any other exception in a test is a harness error, never
counted against the target.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from conformance.catalogue import Level, get


class Verdict(enum.Enum):
    """The outcome for one requirement, in rising order of weight.

    Three outcomes judge nothing and are kept apart: *out of scope* (the role
    is not under test in this run), *not applicable* (the target showed that it
    lacks the feature, with that evidence) and *not judged* (the rule applies
    but this run could not judge it, with a remedy). Only the last one keeps a
    run from certifying.
    """

    OUT_OF_SCOPE = "out of scope"
    NOT_APPLICABLE = "not applicable"
    PASS = "pass"
    NOT_JUDGED = "not judged"
    WARN = "warn"
    ERROR = "error"
    FAIL = "fail"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def judged(self) -> bool:
        """Whether the target's behaviour was judged (a pass or a finding)."""
        return self in (Verdict.PASS, Verdict.WARN, Verdict.FAIL)

    def worst(self, other: Verdict) -> Verdict:
        """The weightier of two verdicts: status only escalates."""
        return self if self.rank >= other.rank else other


_RANK = {v: i for i, v in enumerate(Verdict)}


def combine(a: Verdict, b: Verdict) -> Verdict:
    """Merge two tests' verdicts on one requirement: the weightier one wins.

    So a pass outweighs *not applicable* (one transport lacks the feature,
    the other was judged), while *not judged* outweighs a pass: a rule judged
    over HTTP but not over WebSocket was not judged in full.
    """
    return a.worst(b)


def verdict_for_violation(level: Level, strict: bool) -> Verdict:
    """A broken MUST fails; a broken SHOULD warns (fails under ``--strict``); MAY/INFO inform."""
    if level is Level.MUST:
        return Verdict.FAIL
    if level is Level.SHOULD:
        return Verdict.FAIL if strict else Verdict.WARN
    return Verdict.PASS


class Violation(AssertionError):
    """A target broke requirement ``req_id``; ``evidence`` is the transcript."""

    def __init__(self, req_id: str, message: str, evidence: str = "") -> None:
        get(req_id)  # an unknown ID is a bug in the suite: fail loudly here
        self.req_id = req_id
        self.message = message
        self.evidence = evidence
        super().__init__(self.render())

    def render(self) -> str:
        req = get(self.req_id)
        text = f"{req.id} ({req.level.value}) violated: {self.message}\n  rule: {req.title}"
        text += f"\n  spec: {req.source}"
        if self.evidence:
            text += "\n  evidence:\n" + _indent(self.evidence, "    ")
        return text


class Violations(AssertionError):
    """Several violations found by one test.

    ``complete`` says the test ran all its checks before raising (a tally
    reported at the end), so the requirements it declares and did not
    violate have passed.
    """

    def __init__(self, items: Iterable[Violation], *, complete: bool = False) -> None:
        self.items = list(items)
        self.complete = complete
        super().__init__("\n\n".join(v.render() for v in self.items))


def violations_of(exc: BaseException | None) -> list[Violation]:
    """The violations an exception carries; none when anything in it is a harness error.

    Hypothesis raises an exception group when one test fails in two different
    places (say SRV-REPLY and SRV-FS-GAP): every member must be a violation.
    """
    if isinstance(exc, Violation):
        return [exc]
    if isinstance(exc, Violations):
        return list(exc.items)
    if isinstance(exc, BaseExceptionGroup):
        found: list[Violation] = []
        for member in exc.exceptions:
            inner = violations_of(member)
            if not inner:
                return []
            found.extend(inner)
        return found
    return []


def first_per_rule(found: Iterable[Violation]) -> list[Violation]:
    """The first violation of each requirement, in order (one finding per rule per test)."""
    seen: dict[str, Violation] = {}
    for violation in found:
        seen.setdefault(violation.req_id, violation)
    return list(seen.values())


def completed_checks(exc: BaseException | None) -> bool:
    """Whether the failing test still ran every check it declares."""
    return isinstance(exc, Violations) and exc.complete


def require(req_id: str, condition: bool, message: str, evidence: str = "") -> None:
    """Raise :class:`Violation` for ``req_id`` unless ``condition`` holds."""
    if not condition:
        raise Violation(req_id, message, evidence)


@dataclass
class Findings:
    """Collects violations during a test and raises them together at the end.

    Used for SHOULD rules that are counted over a whole run ("flag on 37 of
    37 contiguous messages") rather than failing at the first instance.
    """

    items: list[Violation] = field(default_factory=list)

    def add(self, req_id: str, message: str, evidence: str = "") -> None:
        self.items.append(Violation(req_id, message, evidence))

    def check(self, req_id: str, condition: bool, message: str, evidence: str = "") -> None:
        if not condition:
            self.add(req_id, message, evidence)

    def raise_if_any(self) -> None:
        """Raise what was collected; called once the test has run all its checks."""
        if self.items:
            raise Violations(self.items, complete=True)


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.splitlines())
