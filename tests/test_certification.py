"""The certification rule, case by case, and the JUnit mapping of baselines."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest

from conformance.certification import (
    CERTIFIED,
    INCOMPLETE,
    NOT_CERTIFIED,
    certify,
    summary_line,
)
from conformance.report_junit import render as render_junit


def req(
    rid: str, verdict: str, level: str = "MUST", role: str = "server", **extra: Any
) -> dict[str, Any]:
    return {"id": rid, "verdict": verdict, "level": level, "role": role} | extra


PASSING = [req("SRV-REPLY", "pass"), req("SRV-FS-QUIET", "pass", "SHOULD")]


def test_all_must_passed_certifies() -> None:
    result = certify(PASSING, strict=False)
    assert result.certified and result.verdict == CERTIFIED
    assert result.to_json()["verdict"] == "CERTIFIED" and result.to_json()["certified"]


@pytest.mark.parametrize(
    "extra, blocker",
    [
        (req("SRV-FS-GAP", "fail"), "SRV-FS-GAP: failed"),
        (
            req("SRV-FS-GAP", "fail", baseline={"status": "expected", "reason": "r"}),
            "SRV-FS-GAP: failed (expected failure)",
        ),
        (req("SRV-BADREQ", "error", "SHOULD"), "SRV-BADREQ: harness error, not judged"),
        (
            req("SRV-BADREQ", "pass", "SHOULD", baseline={"status": "stale", "reason": "r"}),
            "SRV-BADREQ: stale baseline entry",
        ),
    ],
)
def test_each_blocker_is_named(extra: dict[str, Any], blocker: str) -> None:
    result = certify([*PASSING, extra], strict=False)
    assert result.verdict == NOT_CERTIFIED and not result.certified
    assert result.blockers == [blocker]
    assert result.to_json()["certified"] is False


def test_should_warning_blocks_only_under_strict() -> None:
    reqs = [*PASSING, req("SRV-GZIP-RESP", "warn", "SHOULD")]
    assert certify(reqs, strict=False).certified
    assert certify(reqs, strict=True).verdict == NOT_CERTIFIED


def test_a_must_not_judged_makes_it_incomplete_with_the_remedy() -> None:
    missing = req("SRV-413", "not judged", reason="quick profile", remedy="--max-message-bytes=N")
    result = certify([*PASSING, missing], strict=False)
    assert result.verdict == INCOMPLETE and not result.certified
    assert [m.to_json() for m in result.not_judged] == [
        {
            "id": "SRV-413",
            "level": "MUST",
            "reason": "quick profile",
            "remedy": "--max-message-bytes=N",
        }
    ]
    assert "1 not judged" in summary_line(result)


def test_a_should_not_judged_counts_only_under_strict() -> None:
    reqs = [*PASSING, req("SRV-FS-STATELESS", "not judged", "SHOULD", reason="r", remedy="m")]
    assert certify(reqs, strict=False).certified
    assert certify(reqs, strict=True).verdict == INCOMPLETE


def test_a_failure_outweighs_what_was_not_judged() -> None:
    reqs = [
        *PASSING,
        req("SRV-413", "not judged", reason="r", remedy="m"),
        req("SRV-FS-GAP", "fail"),
    ]
    assert certify(reqs, strict=False).verdict == NOT_CERTIFIED


def test_not_applicable_must_is_listed_not_blocking() -> None:
    na = req("SRV-AUTH-401", "not applicable", reason="served without credentials")
    result = certify([*PASSING, na], strict=False)
    assert result.certified
    assert result.not_applicable == [("SRV-AUTH-401", "served without credentials")]


def test_nothing_judged_never_certifies() -> None:
    only = [req("SRV-AUTH-401", "not applicable", reason="r")]
    assert certify(only, strict=False).verdict == INCOMPLETE
    assert certify([], strict=False).verdict == INCOMPLETE


def test_an_interrupted_run_is_incomplete() -> None:
    result = certify(PASSING, strict=False, interrupted=True)
    assert result.verdict == INCOMPLETE and "interrupted" in summary_line(result)


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
