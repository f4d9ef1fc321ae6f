"""The console summary printed at the end of a conformance run."""

from __future__ import annotations

import pytest

from conformance.plugin.results import Results
from conformance.verdicts import Verdict

_SHOWN = (Verdict.FAIL, Verdict.ERROR, Verdict.WARN)


def write_summary(tr: pytest.TerminalReporter, results: Results, report_path: str) -> None:
    """One line per failing, erroring or warning requirement, then the counts."""
    tr.section("fleet-conformance verdicts")
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
    counts = ", ".join(
        f"{results.count(v)} {v.value}" for v in reversed(Verdict) if results.count(v)
    )
    tr.write_line(f"requirements: {counts}")
    if report_path:
        tr.write_line(f"report: {report_path} (conformance.html and junit.xml beside it)")
