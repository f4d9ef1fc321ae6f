"""Scenario features: every required one is reached, by its template and in a real quick run."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.messages import new_uid
from conformance.scenarios import coverage
from conformance.scenarios.coverage import Feature
from conformance.scenarios.drift import DriftRun, Focus, Tally
from fixtures.reference.logic import OpAMPLogic
from tests.suite_runner import run_suite
from tests.test_scenarios_drift import Loopback

REQUIRED = [(focus, feature) for focus in Focus for feature in sorted(coverage.required(focus))]
DRIFT_TESTS = 5


def test_every_single_server_focus_requires_features() -> None:
    for focus in Focus:
        assert coverage.required(focus) or focus is Focus.STATELESS, focus


@pytest.mark.parametrize(("focus", "feature"), REQUIRED, ids=lambda v: str(v))
def test_template_reaches_its_feature_against_the_reference(focus: Focus, feature: Feature) -> None:
    tally = Tally()
    logic = OpAMPLogic()
    DriftRun(lambda: Loopback(logic), focus, tally, new_uid).play(coverage.template(feature))
    assert str(feature) in tally.reached, sorted(tally.reached)
    assert not tally.violations
    assert Feature.parse(str(feature)) == feature


def test_quick_run_reaches_every_required_feature_and_reports_them(tmp_path: Path) -> None:
    run = run_suite(
        [
            "-k",
            "test_server_drift and not converge",
            "--profile=quick",
            "--hypothesis-seed=7",
            "-q",
        ],
        tmp_path,
    )
    assert run.report is not None, run.output
    entries = run.report["coverage"]
    assert len(entries) == DRIFT_TESTS * 2, entries  # each drift test over HTTP and WebSocket
    for entry in entries:
        assert entry["required"] > 0, entry
        assert entry["missing"] == [], entry
        assert len(entry["reached"]) >= entry["required"], entry
