"""conformance.json follows its versioned JSON Schema, whatever the verdicts."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest

from conformance.plugin.results import Finding, Results
from conformance.report_json import REPORT_FORMAT, SCHEMA_PATH, build_report, report_schema
from conformance.verdicts import Verdict


def sample_report() -> dict[str, Any]:
    results = Results()
    ids = list(results.by_id)
    for rid, verdict in zip(ids, list(Verdict), strict=False):
        results.add(f"suite::test_{rid}", [Finding(rid, verdict, "why", "#1 evidence")])
    return build_report(
        results,
        targets=["http://127.0.0.1:4320/v1/opamp"],
        profile="quick",
        strict=False,
        seed="42",
        started="2026-11-22T10:00:00+00:00",
        finished="2026-11-22T10:00:09+00:00",
        exit_status=1,
    )


def validate(report: dict[str, Any]) -> None:
    jsonschema.validate(report, report_schema(), format_checker=jsonschema.FormatChecker())


def test_schema_is_valid_and_versioned() -> None:
    jsonschema.Draft202012Validator.check_schema(report_schema())
    assert SCHEMA_PATH.name == f"conformance-report.v{REPORT_FORMAT}.schema.json"


def test_a_report_with_every_verdict_validates() -> None:
    validate(sample_report())


@pytest.mark.parametrize(
    "damage",
    [
        lambda r: r.pop("requirements"),
        lambda r: r.update(profile="huge"),
        lambda r: r["requirements"][0].update(verdict="maybe"),
        lambda r: r["requirements"][0].update(level="OPTIONAL"),
        lambda r: r.update(targets=["http://user:secret@host/v1/opamp"]),
        lambda r: r.update(extra=1),
    ],
)
def test_damaged_reports_are_refused(damage: Any) -> None:
    report = copy.deepcopy(sample_report())
    damage(report)
    with pytest.raises(jsonschema.ValidationError):
        validate(report)
