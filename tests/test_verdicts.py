"""Verdict rules: levels to verdicts, aggregation, exit status."""

from __future__ import annotations

import pytest

from conformance.catalogue import Level
from conformance.plugin.results import Finding, Results, findings_for
from conformance.verdicts import (
    Findings,
    Verdict,
    Violation,
    Violations,
    combine,
    require,
    verdict_for_violation,
)


def test_levels_map_to_verdicts() -> None:
    assert verdict_for_violation(Level.MUST, strict=False) is Verdict.FAIL
    assert verdict_for_violation(Level.SHOULD, strict=False) is Verdict.WARN
    assert verdict_for_violation(Level.SHOULD, strict=True) is Verdict.FAIL
    assert verdict_for_violation(Level.MAY, strict=True) is Verdict.PASS


def test_combine_escalates_and_skip_never_hides() -> None:
    assert combine(Verdict.PASS, Verdict.FAIL) is Verdict.FAIL
    assert combine(Verdict.FAIL, Verdict.PASS) is Verdict.FAIL
    assert combine(Verdict.SKIP, Verdict.PASS) is Verdict.PASS
    assert combine(Verdict.PASS, Verdict.SKIP) is Verdict.PASS
    assert combine(Verdict.NOT_RUN, Verdict.SKIP) is Verdict.SKIP
    assert combine(Verdict.WARN, Verdict.ERROR) is Verdict.ERROR


def test_unknown_requirement_in_a_violation_is_a_suite_bug() -> None:
    with pytest.raises(KeyError):
        Violation("NOPE-1", "x")


def test_require_and_findings() -> None:
    require("SRV-REPLY", True, "fine")
    with pytest.raises(Violation) as info:
        require("SRV-REPLY", False, "no reply", "evidence line")
    assert "SRV-REPLY (MUST)" in str(info.value) and "evidence line" in str(info.value)
    found = Findings()
    found.check("SRV-GZIP", False, "a")
    found.check("SRV-UID-ECHO", False, "b")
    with pytest.raises(Violations) as many:
        found.raise_if_any()
    assert [v.req_id for v in many.value.items] == ["SRV-GZIP", "SRV-UID-ECHO"]


def test_findings_for_outcomes() -> None:
    reqs = ["SRV-REPLY", "SRV-GZIP"]
    passed = findings_for(reqs, "call", "passed", None, "", strict=False)
    assert {f.verdict for f in passed} == {Verdict.PASS}
    skipped = findings_for(reqs, "setup", "skipped", None, "no ws", strict=False)
    assert {(f.verdict, f.message) for f in skipped} == {(Verdict.SKIP, "no ws")}
    harness = findings_for(reqs, "call", "failed", RuntimeError("boom"), "", strict=False)
    assert {f.verdict for f in harness} == {Verdict.ERROR}
    broken = findings_for(reqs, "call", "failed", Violation("SRV-GZIP", "x"), "", strict=False)
    assert [(f.requirement, f.verdict) for f in broken] == [
        ("SRV-GZIP", Verdict.FAIL),
        ("SRV-REPLY", Verdict.NOT_RUN),
    ]


def test_results_exit_status() -> None:
    results = Results()
    assert results.exit_status() == 0
    results.add("t1", [Finding("SRV-REPLY", Verdict.PASS)])
    assert results.exit_status() == 0
    results.add("t2", [Finding("SRV-GZIP", Verdict.ERROR, "harness")])
    assert results.exit_status() == 3
    results.add("t3", [Finding("SRV-GZIP", Verdict.FAIL, "x")])
    assert results.exit_status() == 1
    assert results.by_id["SRV-GZIP"].verdict is Verdict.FAIL
    assert results.by_id["SRV-UID-ECHO"].verdict is Verdict.NOT_RUN


def test_exception_groups_of_violations_are_findings_not_harness_errors() -> None:
    group = ExceptionGroup("two", [Violation("SRV-REPLY", "a"), Violation("SRV-FS-GAP", "b")])
    found = findings_for(["SRV-FS-GAP"], "call", "failed", group, "", strict=False)
    assert {(f.requirement, f.verdict) for f in found} == {
        ("SRV-REPLY", Verdict.FAIL),
        ("SRV-FS-GAP", Verdict.FAIL),
    }
    mixed = ExceptionGroup("mixed", [Violation("SRV-REPLY", "a"), RuntimeError("boom")])
    assert {f.verdict for f in findings_for(["SRV-REPLY"], "call", "failed", mixed, "", False)} == {
        Verdict.ERROR
    }


def test_completed_tally_passes_the_other_declared_requirements() -> None:
    found = Findings()
    found.add("SRV-FS-QUIET", "spurious")
    with pytest.raises(Violations) as info:
        found.raise_if_any()
    reqs = ["SRV-FS-QUIET", "SRV-FS-QUIET-FULL"]
    result = findings_for(reqs, "call", "failed", info.value, "", strict=False)
    assert {(f.requirement, f.verdict) for f in result} == {
        ("SRV-FS-QUIET", Verdict.WARN),
        ("SRV-FS-QUIET-FULL", Verdict.PASS),
    }
    aborted = findings_for(reqs, "call", "failed", Violation("SRV-REPLY", "x"), "", False)
    assert ("SRV-FS-QUIET", Verdict.NOT_RUN) in {(f.requirement, f.verdict) for f in aborted}


def test_requirement_patterns_select_and_exclude() -> None:
    from conformance.plugin.options import selected

    assert selected(["SRV-FS-GAP"], ["SRV-FS-*"], [])
    assert not selected(["SRV-REPLY"], ["SRV-FS-*"], [])
    assert not selected(["SRV-FS-GAP"], [], ["SRV-FS-GAP"])
    # A test checking two rules runs while one of them is still wanted.
    assert selected(["FLEET-SRV-NO-5XX", "FLEET-SRV-ERROR-SHAPE"], [], ["FLEET-SRV-NO-5XX"])
    assert selected(["SRV-REPLY"], [], [])
