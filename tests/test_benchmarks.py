"""The benchmark scripts still run (tiny versions; the figures themselves are not judged)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from benchmarks import readme, throughput
from benchmarks.detection_file import resumable_rows
from benchmarks.findings import counterexample_exchanges, first_finding_seconds
from benchmarks.run import detection_summary
from benchmarks.verdict_time import _status_kb, _tree


def test_throughput_measures_every_pair_from_one_run() -> None:
    figures = throughput.measure(0.2, [1])
    for transport in ("http", "ws"):
        row = figures[transport]["jobs_1"]
        pairs = ("raw_to_minimal", "driver_to_minimal", "raw_to_reference", "driver_to_reference")
        for pair in pairs:
            assert row[pair] > 0, (transport, pair)
        assert row["driver_share_of_ceiling"] > 0


def test_process_tree_and_memory_are_read_from_proc() -> None:
    assert os.getpid() in _tree(os.getpid())
    assert _status_kb(os.getpid(), "VmHWM") > 0


def test_findings_timing_and_counterexample_length(tmp_path: Path) -> None:
    results = tmp_path / "allure-results"
    results.mkdir()
    for name, start, stop, attachments in [
        ("a", 1000, 2000, []),
        ("b", 1500, 4000, [{"name": "SRV-FS-GAP fail"}]),
        ("c", 1200, 3000, [{"name": "SRV-FS-QUIET warn"}]),
    ]:
        result = {"start": start, "stop": stop, "attachments": attachments}
        (results / f"{name}-result.json").write_text(json.dumps(result))
    assert first_finding_seconds(tmp_path, must_only=True) == 3.0
    assert first_finding_seconds(tmp_path, must_only=False) == 2.0
    report = {
        "requirements": [
            {
                "id": "SRV-FS-GAP",
                "evidence": [
                    {"verdict": "fail", "evidence": "header\n#1   A http >> x\n#2   A http >> y"},
                    {"verdict": "fail", "evidence": "#1 only"},
                ],
            }
        ]
    }
    assert counterexample_exchanges(report, {"SRV-FS-GAP"}) == 1
    opamp_agent = "\n".join(
        [
            "t=+  0.010s http  << seq=0 uid=0190 [agent_description] -> ack",
            "t=+  0.020s ws    connect -> 101",
            "t=+  0.030s ws#1  << seq=1 uid=0190 [health] -> full-state",
            "t=+  0.040s note  sent SIGTERM to the agent",
        ]
    )
    report["requirements"].append(
        {"id": "AGT-SEQ", "evidence": [{"verdict": "fail", "evidence": opamp_agent}]}
    )
    assert counterexample_exchanges(report, {"AGT-SEQ"}) == 2
    assert counterexample_exchanges(report, {"SRV-REPLY"}) is None


def test_detection_summary_reads_detection_rate_output(tmp_path: Path) -> None:
    timed = {
        "runs": 20,
        "detection_rate": 1.0,
        "median_seconds": 3.0,
        "first_must_median_seconds": 1.5,
        "first_finding_median_seconds": 1.5,
        "counterexample_median_exchanges": 2,
    }
    untimed = {"runs": 20, "detection_rate": 0.95, "median_seconds": 9.0}
    data = {"date": "2026-11-22", "profile": "quick", "targets": {"a": timed, "b": untimed}}
    path = tmp_path / "detection.json"
    path.write_text(json.dumps(data))
    summary = detection_summary([path])
    assert summary["cases"]["a"]["first_must_median_seconds"] == 1.5
    assert summary["cases"]["a"]["counterexample_median_exchanges"] == 2
    assert summary["all_detected"] is False
    assert summary["cases_without_timing"] == ["b"]
    newer = {"date": "2026-11-23", "profile": "quick", "targets": {"b": timed}}
    (tmp_path / "a-newer.json").write_text(json.dumps(newer))
    both = detection_summary([tmp_path / "a-newer.json", path])
    assert both["cases"]["b"]["detection_rate"] == 1.0  # the newer file wins, whatever its name


def test_detection_measurement_resumes_only_the_same_plan(tmp_path: Path) -> None:
    out = tmp_path / "detection.json"
    out.write_text(json.dumps({"profile": "quick", "seeds": [1, 2], "targets": {"a": {}}}))
    assert resumable_rows(out, "quick", [1, 2]) == {"a": {}}
    assert resumable_rows(out, "full", [1, 2]) == {}
    assert resumable_rows(out, "quick", [1, 2, 3]) == {}
    assert resumable_rows(tmp_path / "missing.json", "quick", [1]) == {}


def test_readme_shows_the_committed_figures() -> None:
    assert readme.main(["--check"]) == 0, "run: python -m benchmarks.readme"


def test_throughput_measured_on_its_own_says_when() -> None:
    bench = json.loads(readme.BENCH.read_text())
    bench["throughput"] = {**bench["throughput"], "date": "2030-01-02T03:04:05+00:00"}
    rendered = readme.render(bench)
    assert "measured 2030-01-02 with `python -m benchmarks.run --throughput-only`" in rendered
    del bench["throughput"]["date"]
    assert "--throughput-only" not in readme.render(bench)
