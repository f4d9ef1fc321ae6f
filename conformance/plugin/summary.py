"""The console summary printed at the end of a conformance run, and its verdict line."""

from __future__ import annotations

import pytest

from conformance.certification import (
    CERTIFIED,
    INCOMPLETE,
    Certification,
    Missing,
    group_missing,
    summary_line,
)
from conformance.plugin.results import Results
from conformance.scope import Scope
from conformance.verdicts import Verdict

_SHOWN = (Verdict.FAIL, Verdict.ERROR, Verdict.WARN)
_COUNTED = (
    Verdict.FAIL,
    Verdict.ERROR,
    Verdict.WARN,
    Verdict.NOT_JUDGED,
    Verdict.PASS,
    Verdict.NOT_APPLICABLE,
)


def write_summary(
    tr: pytest.TerminalReporter,
    results: Results,
    cert: Certification,
    scope: Scope,
    report_path: str,
) -> None:
    """The scope, findings, what was not judged (with remedies) and not applicable, counts."""
    tr.section("fleet-conformance verdicts")
    tr.write_line(scope.describe())
    for verdict in _SHOWN:
        for result in results.by_id.values():
            if result.verdict is not verdict:
                continue
            req = result.requirement
            reason = next(
                (f.message for f in result.findings if f.verdict is verdict and f.message), ""
            )
            first = reason.splitlines()[0] if reason else ""
            label = verdict.value.upper()
            if result.baseline == "expected":
                label = f"{label} (expected)"
                first = f"{first} [baseline: {result.baseline_reason}]"
            tr.write_line(f"{label:5} {req.id} ({req.level.value}): {first}")
    for result in results.by_id.values():
        if result.baseline == "stale":
            req = result.requirement
            tr.write_line(
                f"STALE {req.id} ({req.level.value}): listed in --expected-failures"
                f" ({result.baseline_reason}) but passed: remove the entry"
            )
    for remedy, members in group_missing(cert.not_judged).items():
        for reason, same in _by_reason(members).items():
            tr.write_line(f"NOT JUDGED {', '.join(same)}: {reason}")
        tr.write_line(f"    to judge {'it' if len(members) == 1 else 'them'}: {remedy}")
    if cert.not_applicable:
        names = ", ".join(rid for rid, _ in cert.not_applicable)
        tr.write_line(f"not applicable (the target's own answers, see the report): {names}")
    in_scope = results.in_scope()
    counts = ", ".join(
        f"{n} {v.value}" for v in _COUNTED if (n := sum(1 for r in in_scope if r.verdict is v))
    )
    tr.write_line(f"requirements: {counts}")
    out = results.count(Verdict.OUT_OF_SCOPE)
    if out:
        tr.write_line(f"out of scope: {out} requirements of the roles not under test")
    if report_path:
        tr.write_line(f"report: {report_path} (conformance.html and junit.xml beside it)")


def _by_reason(members: list[Missing]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for item in members:
        found.setdefault(item.reason, []).append(f"{item.id} ({item.level})")
    return found


def write_verdict_line(
    tr: pytest.TerminalReporter, cert: Certification, transports: dict[str, set[str]]
) -> None:
    """The run's last console line: the certification verdict and why (for CERTIFIED, the
    transports it covers: an agent certified over plain HTTP is not over WebSocket)."""
    markup = {"green": True} if cert.verdict == CERTIFIED else {"red": True}
    if cert.verdict == INCOMPLETE:
        markup = {"yellow": True}
    line = summary_line(cert)
    if cert.verdict == CERTIFIED and transports:
        over = "; ".join(f"{part} {', '.join(sorted(t))}" for part, t in transports.items())
        line += f"; over {over}"
    tr.write_line("fleet-conformance: " + line, bold=True, **markup)
