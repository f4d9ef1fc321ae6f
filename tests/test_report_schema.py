"""conformance.json follows its versioned JSON Schema, whatever the verdicts."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest

from conformance.plugin.results import Finding, Results
from conformance.report_json import REPORT_FORMAT, SCHEMA_PATH, build_report, report_schema
from conformance.scope import Part, Scope
from conformance.verdicts import Verdict


def sample_report() -> dict[str, Any]:
    results = Results()
    ids = list(results.by_id)
    for rid, verdict in zip(ids, list(Verdict), strict=False):
        remedy = "--option=value" if verdict is Verdict.NOT_JUDGED else ""
        results.add(
            f"suite::test_{rid}[http]",
            [Finding(rid, verdict, "why", "#1 evidence", remedy)],
            ["OpAMP server/http"],
        )
    scope = Scope(parts=tuple(Part), profile="quick", transport="auto", windows={"x": 1.0})
    results.finalize(scope, lambda rid: False)
    return build_report(
        results,
        scope=scope,
        targets=["http://127.0.0.1:4320/v1/opamp"],
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
    report = sample_report()
    validate(report)
    seen = {r["verdict"] for r in report["requirements"]}
    assert seen == {v.value for v in Verdict} - {"out of scope"}
    assert report["scope"]["transports_judged"] == {"OpAMP server": ["http"]}


@pytest.mark.parametrize(
    "damage",
    [
        lambda r: r.pop("requirements"),
        lambda r: r.update(profile="huge"),
        lambda r: r["requirements"][0].update(verdict="maybe"),
        lambda r: r["requirements"][0].update(level="OPTIONAL"),
        lambda r: r.update(targets=["http://user:secret@host/v1/opamp"]),
        lambda r: r.update(extra=1),
        lambda r: r["requirements"][0].update(verdict="skip"),
        lambda r: r["certification"].update(verdict="CERTIFIED", certified=False),
        lambda r: r["certification"].update(verdict="INCOMPLETE", certified=True),
        lambda r: r["scope"].pop("roles_tested"),
        lambda r: next(q for q in r["requirements"] if q["verdict"] == "not judged").pop("remedy"),
    ],
)
def test_damaged_reports_are_refused(damage: Any) -> None:
    report = copy.deepcopy(sample_report())
    damage(report)
    with pytest.raises(jsonschema.ValidationError):
        validate(report)
