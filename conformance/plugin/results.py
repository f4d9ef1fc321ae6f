"""Per-test verdict records and their aggregation into one verdict per requirement.

Workers attach a JSON record to each test report (``user_properties``), so
the same aggregation runs in the controller under pytest-xdist and in a plain
single-process run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest

from conformance.baseline import Entry
from conformance.catalogue import CATALOGUE, Requirement
from conformance.outcomes import NotApplicable, NotJudged, OutOfScope
from conformance.scope import Scope, part_of
from conformance.verdicts import (
    Verdict,
    combine,
    completed_checks,
    verdict_for_violation,
    violations_of,
)

RECORD_KEY = "conformance"
#: ``user_properties`` key of observations a passing test records (INFO rules).
NOTE_KEY = "conformance-observation"
#: ``user_properties`` key of a transport a test used: ``"<part>/<transport>"``
#: (``"OpAMP server/ws"``, ``"OpAMP agent/http"``).
TRANSPORT_KEY = "conformance-transport"
#: ``user_properties`` key of the scenario features a drift test reached (JSON).
COVERAGE_KEY = "conformance-coverage"


def requirement_ids(item: pytest.Item) -> list[str]:
    """The requirement IDs a test declares with ``@pytest.mark.requirement``."""
    ids: list[str] = []
    for mark in item.iter_markers("requirement"):
        ids.extend(str(a) for a in mark.args)
    return list(dict.fromkeys(ids))


@dataclass
class Finding:
    """One requirement's outcome in one test."""

    requirement: str
    verdict: Verdict
    message: str = ""
    evidence: str = ""
    #: What the user can do to judge it (``not judged`` findings only).
    remedy: str = ""

    def to_json(self) -> dict[str, str]:
        data = {
            "requirement": self.requirement,
            "verdict": self.verdict.value,
            "message": self.message,
            "evidence": self.evidence,
        }
        if self.remedy:
            data["remedy"] = self.remedy
        return data


#: The remedy of a plain ``pytest.skip`` (suite code calls :mod:`conformance.outcomes`).
UNCLASSIFIED_REMEDY = "see the reason; the suite did not say how to judge it"


def skip_findings(requirements: list[str], exc: BaseException | None, reason: str) -> list[Finding]:
    """The findings of a skipped test, by which of :mod:`conformance.outcomes` ended it."""
    if isinstance(exc, NotApplicable):
        return [Finding(r, Verdict.NOT_APPLICABLE, exc.reason, exc.evidence) for r in requirements]
    if isinstance(exc, OutOfScope):
        return [Finding(r, Verdict.OUT_OF_SCOPE, exc.reason) for r in requirements]
    if isinstance(exc, NotJudged):
        return [Finding(r, Verdict.NOT_JUDGED, exc.reason, remedy=exc.remedy) for r in requirements]
    # Anything else that skipped (a plain pytest.skip) judged nothing: never a pass.
    return [
        Finding(r, Verdict.NOT_JUDGED, reason, remedy=UNCLASSIFIED_REMEDY) for r in requirements
    ]


def findings_for(
    requirements: list[str],
    when: str,
    outcome: str,
    exc: BaseException | None,
    skip_reason: str,
    strict: bool,
    notes: list[str] | None = None,
) -> list[Finding]:
    """Turn one test phase's outcome into findings for the declared requirements.

    ``notes`` are observations a passing test recorded; they become the
    message of its pass findings (how SRV-THROTTLE reports what it saw).
    """
    if outcome == "skipped":
        return skip_findings(requirements, exc, skip_reason)
    if outcome == "passed":
        note = "; ".join(notes or [])
        return [Finding(r, Verdict.PASS, note) for r in requirements] if when == "call" else []
    violations = violations_of(exc)
    if not violations:
        text = f"harness error in {when}: {type(exc).__name__}: {exc}" if exc else when
        return [Finding(r, Verdict.ERROR, text) for r in requirements]
    found: list[Finding] = []
    for v in violations:
        verdict = verdict_for_violation(CATALOGUE[v.req_id].level, strict)
        found.append(Finding(v.req_id, verdict, v.message, v.evidence))
    violated = {v.req_id for v in violations}
    rest = [r for r in requirements if r not in violated]
    if completed_checks(exc):
        found += [Finding(r, Verdict.PASS) for r in rest]
    else:
        why = "the test stopped at its finding on " + ", ".join(sorted(violated))
        remedy = "fix that finding and run again"
        found += [Finding(r, Verdict.NOT_JUDGED, why, remedy=remedy) for r in rest]
    return found


def encode(findings: list[Finding]) -> str:
    return json.dumps([f.to_json() for f in findings])


def decode(text: str) -> list[Finding]:
    return [
        Finding(
            d["requirement"],
            Verdict(d["verdict"]),
            d["message"],
            d["evidence"],
            d.get("remedy", ""),
        )
        for d in json.loads(text)
    ]


@dataclass
class RequirementResult:
    """The aggregated verdict for one requirement over every test that checked it."""

    requirement: Requirement
    #: *not judged* until a test reports on it (see :meth:`Results.finalize`).
    verdict: Verdict = Verdict.NOT_JUDGED
    #: Every test's finding on this requirement, with the test's node ID.
    checks: list[tuple[str, Finding]] = field(default_factory=list)
    #: Set by a baseline: "expected" (a listed failure) or "stale" (listed, but passed).
    baseline: str | None = None
    baseline_reason: str = ""
    #: Why no test judged it, and how to, when no test reported on it at all.
    unreported: tuple[str, str] | None = None

    @property
    def reason(self) -> str:
        """Why the verdict is what it is, for *not judged* and *not applicable*."""
        if self.unreported is not None:
            return self.unreported[0]
        return next((f.message for f in self.findings if f.verdict is self.verdict), "")

    @property
    def remedy(self) -> str:
        """How to judge a *not judged* requirement ('' for any other verdict)."""
        if self.verdict is not Verdict.NOT_JUDGED:
            return ""
        if self.unreported is not None:
            return self.unreported[1]
        found = (f.remedy for f in self.findings if f.verdict is self.verdict and f.remedy)
        return next(found, UNCLASSIFIED_REMEDY)

    def to_json(self) -> dict[str, Any]:
        req = self.requirement
        extra: dict[str, Any] = {}
        if self.baseline is not None:
            extra["baseline"] = {"status": self.baseline, "reason": self.baseline_reason}
        if self.verdict in (Verdict.NOT_JUDGED, Verdict.NOT_APPLICABLE):
            extra["reason"] = self.reason
        if self.verdict is Verdict.NOT_JUDGED:
            extra["remedy"] = self.remedy
        return extra | {
            "id": req.id,
            "level": req.level.value,
            "role": req.role.value,
            "part": part_of(req.id).value,
            "title": req.title,
            "source": req.source,
            "verdict": self.verdict.value,
            "tests": sorted({test for test, _ in self.checks}),
            "checks": [
                {"test": test, "verdict": f.verdict.value, "message": f.message}
                for test, f in self.checks
            ],
            "evidence": [
                f.to_json() | {"test": test}
                for test, f in self.checks
                if f.message or f.verdict is not Verdict.PASS
            ],
        }

    @property
    def findings(self) -> list[Finding]:
        return [f for _, f in self.checks]


#: Why a requirement no test reported on was not judged, and the remedy.
UNREPORTED_INTERRUPTED = (
    "the run was interrupted (SIGINT or SIGTERM) before a test judged it",
    "run the suite again to its end",
)
UNREPORTED_DESELECTED = (
    "left out by --requirement, --exclude-requirement or --rerun-failed",
    "run without those options to judge every requirement",
)
UNREPORTED_SCOPE_MISMATCH = (
    "its tests ended as out of scope, though this run tests its role",
    "report this to the suite's maintainers with the report attached",
)
UNREPORTED_NO_TEST = (
    "no test reported on it in this run",
    "run the whole suite (no test path or -k selection)",
)


@dataclass
class Results:
    """All requirements, their verdicts so far, and the tests behind them."""

    by_id: dict[str, RequirementResult] = field(
        default_factory=lambda: {rid: RequirementResult(r) for rid, r in CATALOGUE.items()}
    )
    seen_any: bool = False
    #: Transports of the tests that judged something (a pass or a finding), by part.
    transports_judged: dict[str, set[str]] = field(default_factory=dict)
    #: Harness errors outside any requirement: a test that ended without a verdict
    #: record (an xdist worker that crashed), a collection error.
    orphans: list[str] = field(default_factory=list)
    #: Scenario features each drift test reached (the report's ``coverage``).
    coverage: list[dict[str, Any]] = field(default_factory=list)

    def add(self, nodeid: str, findings: list[Finding], transports: Iterable[str] = ()) -> None:
        if any(f.verdict.judged for f in findings):
            for item in transports:
                part, _, transport = item.partition("/")
                self.transports_judged.setdefault(part, set()).add(transport)
        for finding in findings:
            result = self.by_id[finding.requirement]
            self.seen_any = True
            first = not result.checks
            result.checks.append((nodeid, finding))
            result.verdict = finding.verdict if first else combine(result.verdict, finding.verdict)

    def finalize(self, scope: Scope, deselected: Callable[[str], bool]) -> None:
        """Settle the requirements no test reported on, and those out of scope."""
        for rid, result in self.by_id.items():
            if not scope.covers(rid):
                result.verdict = Verdict.OUT_OF_SCOPE
            elif result.verdict is Verdict.OUT_OF_SCOPE:
                # A test called its role out of scope though the run tests that role:
                # never let that drop the requirement from the certification.
                result.unreported = UNREPORTED_SCOPE_MISMATCH
                result.verdict = Verdict.NOT_JUDGED
            elif not result.checks:
                if scope.interrupted:
                    result.unreported = UNREPORTED_INTERRUPTED
                elif deselected(rid):
                    result.unreported = UNREPORTED_DESELECTED
                else:
                    result.unreported = UNREPORTED_NO_TEST
                result.verdict = Verdict.NOT_JUDGED

    def in_scope(self) -> list[RequirementResult]:
        return [r for r in self.by_id.values() if r.verdict is not Verdict.OUT_OF_SCOPE]

    def count(self, verdict: Verdict) -> int:
        return sum(1 for r in self.by_id.values() if r.verdict is verdict)

    def apply_baseline(self, entries: Iterable[Entry], targets: list[str]) -> None:
        """Mark listed failures as expected and listed passes as stale."""
        for entry in entries:
            if not entry.applies_to(targets):
                continue
            result = self.by_id[entry.id]
            if result.verdict in (Verdict.FAIL, Verdict.WARN):
                result.baseline = "expected"
            elif result.verdict is Verdict.PASS:
                result.baseline = "stale"
            result.baseline_reason = entry.reason

    def exit_status(self) -> int:
        """1 when a requirement fails unexpectedly or a baseline entry is stale,
        3 when only the harness broke (a requirement in error, or an orphan), else 0."""
        unexpected = any(
            r.verdict is Verdict.FAIL and r.baseline != "expected" for r in self.by_id.values()
        )
        stale = any(r.baseline == "stale" for r in self.by_id.values())
        if unexpected or stale:
            return 1
        if self.count(Verdict.ERROR) or self.orphans:
            return 3
        return 0
