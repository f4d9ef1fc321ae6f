"""Verdict rules: levels to verdicts, aggregation, exit status."""

from __future__ import annotations

import pytest

from conformance.catalogue import Level
from conformance.outcomes import NotApplicable, NotJudged, OutOfScope
from conformance.plugin.results import Finding, Results, findings_for
from conformance.scope import Part, Scope
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


def test_combine_escalates_and_not_applicable_never_hides_a_pass() -> None:
    assert combine(Verdict.PASS, Verdict.FAIL) is Verdict.FAIL
    assert combine(Verdict.FAIL, Verdict.PASS) is Verdict.FAIL
    assert combine(Verdict.NOT_APPLICABLE, Verdict.PASS) is Verdict.PASS
    assert combine(Verdict.PASS, Verdict.NOT_APPLICABLE) is Verdict.PASS
    assert combine(Verdict.WARN, Verdict.ERROR) is Verdict.ERROR


def test_a_rule_judged_on_one_transport_only_is_not_judged() -> None:
    assert combine(Verdict.PASS, Verdict.NOT_JUDGED) is Verdict.NOT_JUDGED
    assert combine(Verdict.NOT_JUDGED, Verdict.PASS) is Verdict.NOT_JUDGED
    assert combine(Verdict.NOT_JUDGED, Verdict.FAIL) is Verdict.FAIL
    assert combine(Verdict.NOT_APPLICABLE, Verdict.NOT_JUDGED) is Verdict.NOT_JUDGED


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
    plain = findings_for(reqs, "setup", "skipped", None, "no ws", strict=False)
    assert {(f.verdict, f.message) for f in plain} == {(Verdict.NOT_JUDGED, "no ws")}
    assert all(f.remedy for f in plain)
    na = NotApplicable("no WebSocket", "upgrade answered 404")
    skipped = findings_for(reqs, "setup", "skipped", na, "x", strict=False)
    assert {(f.verdict, f.message, f.evidence) for f in skipped} == {
        (Verdict.NOT_APPLICABLE, "no WebSocket", "upgrade answered 404")
    }
    nj = NotJudged("no token", "--enrollment-token=T")
    unjudged = findings_for(reqs, "call", "skipped", nj, "x", strict=False)
    assert {(f.verdict, f.remedy) for f in unjudged} == {
        (Verdict.NOT_JUDGED, "--enrollment-token=T")
    }
    out = findings_for(reqs, "setup", "skipped", OutOfScope("no agent"), "x", strict=False)
    assert {f.verdict for f in out} == {Verdict.OUT_OF_SCOPE}
    harness = findings_for(reqs, "call", "failed", RuntimeError("boom"), "", strict=False)
    assert {f.verdict for f in harness} == {Verdict.ERROR}
    broken = findings_for(reqs, "call", "failed", Violation("SRV-GZIP", "x"), "", strict=False)
    assert [(f.requirement, f.verdict) for f in broken] == [
        ("SRV-GZIP", Verdict.FAIL),
        ("SRV-REPLY", Verdict.NOT_JUDGED),
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
    assert results.by_id["SRV-UID-ECHO"].verdict is Verdict.NOT_JUDGED


def test_a_first_pass_is_not_merged_with_the_unreported_default() -> None:
    results = Results()
    results.add("t1", [Finding("SRV-REPLY", Verdict.PASS)])
    assert results.by_id["SRV-REPLY"].verdict is Verdict.PASS


def test_finalize_settles_unreported_and_out_of_scope_requirements() -> None:
    def scope(interrupted: bool) -> Scope:
        return Scope(
            parts=(Part.OPAMP_SERVER,), profile="quick", transport="auto", interrupted=interrupted
        )

    results = Results()
    results.add("t1", [Finding("SRV-REPLY", Verdict.PASS)])
    results.finalize(scope(False), lambda rid: rid == "SRV-GZIP")
    assert results.by_id["SRV-REPLY"].verdict is Verdict.PASS
    assert results.by_id["AGT-SEQ"].verdict is Verdict.OUT_OF_SCOPE
    assert results.by_id["FLEET-SRV-STATUS"].verdict is Verdict.OUT_OF_SCOPE
    gzip = results.by_id["SRV-GZIP"]
    assert gzip.verdict is Verdict.NOT_JUDGED and "--requirement" in gzip.reason
    assert gzip.remedy
    assert "no test" in results.by_id["SRV-413"].reason
    assert {r.requirement.id for r in results.in_scope()} >= {"SRV-REPLY", "SRV-GZIP"}
    # A test calling an in-scope role out of scope never drops the requirement.
    odd = Results()
    odd.add("t", [Finding("SRV-413", Verdict.OUT_OF_SCOPE, "no server")])
    odd.finalize(scope(False), lambda rid: False)
    assert odd.by_id["SRV-413"].verdict is Verdict.NOT_JUDGED
    cut = Results()
    cut.finalize(scope(True), lambda rid: False)
    assert "interrupted" in cut.by_id["SRV-413"].reason


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
    assert ("SRV-FS-QUIET", Verdict.NOT_JUDGED) in {(f.requirement, f.verdict) for f in aborted}


def test_requirement_patterns_select_and_exclude() -> None:
    from conformance.plugin.options import selected

    assert selected(["SRV-FS-GAP"], ["SRV-FS-*"], [])
    assert not selected(["SRV-REPLY"], ["SRV-FS-*"], [])
    assert not selected(["SRV-FS-GAP"], [], ["SRV-FS-GAP"])
    # A test checking two rules runs while one of them is still wanted.
    assert selected(["FLEET-SRV-NO-5XX", "FLEET-SRV-ERROR-SHAPE"], [], ["FLEET-SRV-NO-5XX"])
    assert selected(["SRV-REPLY"], [], [])
