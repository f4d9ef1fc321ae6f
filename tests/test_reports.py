"""The reports of a real run against a faulty twin: JSON, HTML, JUnit, Allure, re-runs.

One twin (``seed-draft``: breaks SRV-FS-RECONNECT, warns SRV-FS-QUIET-FULL) is tested
twice with the same seed, once with ``-n 2`` and once in one process; both
runs must reach the same verdicts, and every report they write must say
the same thing in its own format.
"""

from __future__ import annotations

import json
import os
import random
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.catalogue import CATALOGUE
from fixtures.kill_matrix import load
from tests.browser import chromium_page, find_chromium
from tests.suite_runner import REPO, SuiteRun, run_suite

TWIN = "seed-draft"
SCREENSHOT = REPO / "reports" / "screenshots" / "conformance-html.png"


class Runs:
    def __init__(self, target_args: list[str], workdir: Path) -> None:
        self.target_args = target_args
        self.workdir = workdir
        seed = random.randrange(2**32)
        common = [*target_args, f"--hypothesis-seed={seed}", "--request-timeout=2", "-q"]
        self.xdist = run_suite([*common, "-n", "2"], workdir / "xdist")
        self.single = run_suite(common, workdir / "single")
        self.case = load()[TWIN]

    def reports(self, run: str) -> Path:
        return self.workdir / run / "reports"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    with load()[TWIN].started() as target_args:
        yield Runs(target_args, tmp_path_factory.mktemp("reports"))


def verdicts(run: SuiteRun) -> dict[str, str]:
    assert run.report is not None, run.output
    return {r["id"]: r["verdict"] for r in run.report["requirements"]}


def test_twin_is_reported_exactly(runs: Runs) -> None:
    assert runs.xdist.returncode == 1, runs.xdist.output
    assert runs.xdist.ids("fail") == runs.case.fail, runs.xdist.output
    assert runs.xdist.ids("warn") == runs.case.warn, runs.xdist.output
    assert runs.xdist.report is not None
    assert runs.xdist.report["certification"]["certified"] is False
    assert runs.xdist.report["certification"]["verdict"] == "NOT CERTIFIED"
    assert (
        runs.xdist.output.rstrip()
        .splitlines()[-1]
        .startswith("fleet-conformance: NOT CERTIFIED: SRV-FS-RECONNECT: failed")
    ), runs.xdist.output[-2000:]


def test_xdist_and_single_process_reports_agree(runs: Runs) -> None:
    assert verdicts(runs.xdist) == verdicts(runs.single), runs.single.output
    assert runs.xdist.report is not None and runs.single.report is not None
    tests = {r["id"]: r["tests"] for r in runs.xdist.report["requirements"]}
    assert tests == {r["id"]: r["tests"] for r in runs.single.report["requirements"]}
    assert runs.xdist.report["hypothesis_seed"] == runs.single.report["hypothesis_seed"]


def test_junit_has_one_case_per_requirement_check(runs: Runs) -> None:
    report = runs.xdist.report
    assert report is not None
    suite = ET.parse(runs.reports("xdist") / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert len(cases) == sum(len(r["checks"]) or 1 for r in report["requirements"])
    assert int(suite.get("tests", "0")) == len(cases)
    failed = [c.get("name", "") for c in cases if c.find("failure") is not None]
    assert {name.split(" ", 1)[0] for name in failed} == runs.case.fail
    fail_checks = sum(
        1 for r in report["requirements"] for c in r["checks"] if c["verdict"] == "fail"
    )
    assert len(failed) == fail_checks == int(suite.get("failures", "0"))
    for case in cases:
        assert case.get("name", "").split(" ", 1)[0] in CATALOGUE
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["certification"] == "NOT CERTIFIED"
    assert props["roles_tested"] == ", ".join(report["scope"]["roles_tested"])
    assert props["window.request_timeout"] == "2"


def test_html_is_one_self_contained_file(runs: Runs) -> None:
    html = (runs.reports("xdist") / "conformance.html").read_text()
    assert "NOT CERTIFIED" in html
    assert "Content-Security-Policy" in html
    for fetching in ("<script", "<link", "src=", "@import", "url("):
        assert fetching not in html, fetching
    for rid in runs.case.fail | runs.case.warn:
        assert f'<details id="{rid}" class="req" open>' in html
    assert '<details id="SRV-REPLY" class="req">' in html
    # Each blocker links to its entry; the scope says what was (not) under test.
    for rid in runs.case.fail:
        assert f'<a href="#{rid}">{rid}: failed</a>' in html
    assert '<div class="scope" id="scope">' in html and "OpAMP server" in html


def allure_results(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*-result.json"))]


def test_allure_results_carry_requirements_and_stable_history(runs: Runs) -> None:
    by_run = {}
    for name in ("xdist", "single"):
        results = allure_results(runs.reports(name) / "allure-results")
        assert results, name
        by_run[name] = {r["historyId"]: r for r in results}
        assert len(by_run[name]) == len(results), "historyId must be unique per test"
    # The same tests get the same history IDs in both runs, so trends line up.
    assert set(by_run["xdist"]) == set(by_run["single"])
    for result in by_run["xdist"].values():
        labels: dict[str, list[str]] = {}
        for label in result["labels"]:
            labels.setdefault(label["name"], []).append(label["value"])
        stories = labels["story"]
        assert set(stories) <= set(CATALOGUE)
        assert labels["epic"] and labels["feature"]
        levels = {CATALOGUE[s].level.value for s in stories}
        wanted = "critical" if "MUST" in levels else "normal" if "SHOULD" in levels else None
        if wanted:
            assert labels["severity"] == [wanted]
        assert {link["name"] for link in result["links"]} == set(stories)
        if result["status"] == "failed":
            names = [a["name"] for a in result["attachments"]]
            assert any(n.endswith(" fail") for n in names), names
            source = runs.reports("xdist") / "allure-results" / result["attachments"][0]["source"]
            assert "not asked for full status" in source.read_text()


def test_rerun_failed_runs_only_the_failed_requirements(runs: Runs) -> None:
    previous = runs.reports("xdist") / "conformance.json"
    rerun = run_suite(
        [*runs.target_args, f"--rerun-failed={previous}", "-q"], runs.workdir / "rerun"
    )
    assert rerun.returncode == 1, rerun.output
    assert rerun.ids("fail") == runs.case.fail
    assert rerun.ids("warn") == runs.case.warn
    assert rerun.report is not None
    for req in rerun.report["requirements"]:
        for test in req["tests"]:
            assert "test_server_drift.py" in test, test


def test_rerun_of_a_clean_report_runs_nothing(runs: Runs, tmp_path: Path) -> None:
    clean = runs.reports("xdist") / "conformance.json"
    report = json.loads(clean.read_text())
    for req in report["requirements"]:
        req["verdict"] = "pass"
    path = tmp_path / "clean.json"
    path.write_text(json.dumps(report))
    run = run_suite([*runs.target_args, f"--rerun-failed={path}"], tmp_path / "run")
    assert run.returncode == 0, run.output
    assert "nothing to re-run" in run.output


def test_report_reads_well_in_headless_chromium(runs: Runs) -> None:
    binary = find_chromium()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: scripts/self-test installs it in CI")
        pytest.skip("chromium not installed (Debian package chromium)")
    with chromium_page(binary) as page:
        page.open(runs.reports("xdist") / "conformance.html")
        seen = page.evaluate(LOOK)
        page.screenshot(SCREENSHOT)
    assert seen["resources"] == 0, seen
    assert seen["certification"].startswith("NOT CERTIFIED"), seen
    assert seen["certificationOnScreen"] and seen["countsOnScreen"], seen
    assert seen["evidenceVisible"], seen
    assert seen["failingId"] in runs.case.fail, seen
    assert "not asked for full status" in seen["evidence"], seen
    assert SCREENSHOT.stat().st_size > 10_000


#: What a reader sees: the certification line and counts on the first screen,
#: and the first failing requirement's evidence rendered (not collapsed away).
LOOK = """
(() => {
  const shown = el => {
    if (!el) return false;
    const box = el.getBoundingClientRect(), style = getComputedStyle(el);
    return box.width > 0 && box.height > 0 && style.visibility !== 'hidden'
      && style.display !== 'none';
  };
  const onScreen = el => shown(el) && el.getBoundingClientRect().bottom <= innerHeight;
  const cert = document.getElementById('certification');
  const counts = document.getElementById('counts');
  const evidence = document.querySelector('details.req[open] pre.evidence');
  return {
    certification: cert ? cert.innerText : '',
    certificationOnScreen: onScreen(cert),
    countsOnScreen: onScreen(counts),
    evidenceVisible: shown(evidence),
    evidence: evidence ? evidence.innerText : '',
    failingId: evidence ? evidence.closest('details').id : '',
    resources: performance.getEntriesByType('resource').length,
  };
})()
"""
