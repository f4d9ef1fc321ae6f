"""The certification rule, case by case, and the JUnit mapping of baselines."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest

from conformance.certification import certify
from conformance.report_junit import render as render_junit


def req(
    rid: str, verdict: str, level: str = "MUST", role: str = "server", **extra: Any
) -> dict[str, Any]:
    return {"id": rid, "verdict": verdict, "level": level, "role": role} | extra


PASSING = [req("SRV-REPLY", "pass"), req("SRV-FS-QUIET", "pass", "SHOULD")]


def test_all_must_passed_certifies() -> None:
    assert certify(PASSING, strict=False).certified


@pytest.mark.parametrize(
    "extra, blocker",
    [
        (req("SRV-FS-GAP", "fail"), "SRV-FS-GAP: failed"),
        (
            req("SRV-FS-GAP", "fail", baseline={"status": "expected", "reason": "r"}),
            "SRV-FS-GAP: failed (expected failure)",
        ),
        (req("SRV-FS-GAP", "not run"), "SRV-FS-GAP: not run"),
        (req("SRV-BADREQ", "error", "SHOULD"), "SRV-BADREQ: harness error, not judged"),
        (
            req("SRV-BADREQ", "pass", "SHOULD", baseline={"status": "stale", "reason": "r"}),
            "SRV-BADREQ: stale baseline entry",
        ),
    ],
)
def test_each_blocker_is_named(extra: dict[str, Any], blocker: str) -> None:
    result = certify([*PASSING, extra], strict=False)
    assert not result.certified
    assert result.blockers == [blocker]


def test_should_warning_blocks_only_under_strict() -> None:
    reqs = [*PASSING, req("SRV-GZIP-RESP", "warn", "SHOULD")]
    assert certify(reqs, strict=False).certified
    assert not certify(reqs, strict=True).certified


def test_skipped_must_is_listed_not_blocking() -> None:
    result = certify([*PASSING, req("SRV-AUTH-401", "skip")], strict=False)
    assert result.certified and result.skipped_must == ["SRV-AUTH-401"]


def test_a_role_not_under_test_does_not_block() -> None:
    result = certify([*PASSING, req("AGT-SEQ", "not run", role="agent")], strict=False)
    assert result.certified


def test_nothing_judged_never_certifies() -> None:
    assert not certify([req("SRV-REPLY", "not run")], strict=False).certified


def junit_cases(requirement: dict[str, Any]) -> list[ET.Element]:
    report = {"started": "2026-11-22T10:00:00+00:00", "requirements": [requirement]}
    root = ET.fromstring(render_junit(report, {}))
    return root.findall("testsuite/testcase")


def test_expected_failure_is_a_skipped_case_and_stale_entry_a_failing_one() -> None:
    check = {"test": "suite/t.py::test_a", "verdict": "fail", "message": "broke\x00it"}
    expected = req(
        "SRV-FS-GAP",
        "fail",
        title="t",
        checks=[check],
        evidence=[],
        baseline={"status": "expected", "reason": "known bug 12"},
    )
    (case,) = junit_cases(expected)
    skipped = case.find("skipped")
    assert skipped is not None and "known bug 12" in skipped.get("message", "")
    stale = expected | {
        "verdict": "pass",
        "checks": [check | {"verdict": "pass", "message": ""}],
        "baseline": {"status": "stale", "reason": "fixed upstream"},
    }
    cases = junit_cases(stale)
    assert [c.get("name") for c in cases] == ["SRV-FS-GAP [t.py::test_a]", "SRV-FS-GAP [baseline]"]
    assert cases[1].find("failure") is not None


def test_evidence_with_control_characters_stays_valid_xml() -> None:
    check = {"test": "t.py::test_a", "verdict": "fail", "message": "bytes \x00\x1b end"}
    (case,) = junit_cases(req("SRV-FS-GAP", "fail", checks=[check], evidence=[]))
    failure = case.find("failure")
    assert failure is not None and "bytes" in (failure.text or "")
