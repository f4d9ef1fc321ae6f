"""An interrupted run (SIGINT, SIGTERM; with and without -n) always leaves a report.

The report says INCOMPLETE, names the run as interrupted and lists what was
not judged; the exit code is pytest's 2; no agent the run launched is left.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import jsonschema
import pytest

from conformance.agent import reference
from conformance.plugin.interrupts import child_pids
from conformance.report_json import report_schema
from tests.suite_runner import suite_command
from tests.test_agent_launch import strays


@pytest.mark.parametrize(
    "sig, workers",
    [(signal.SIGTERM, ["-n", "2"]), (signal.SIGINT, ["-n", "2"]), (signal.SIGTERM, [])],
    ids=["sigterm-xdist", "sigint-xdist", "sigterm-single"],
)
def test_an_interrupted_run_writes_an_incomplete_report(
    sig: int, workers: list[str], tmp_path: Path
) -> None:
    report_dir = tmp_path / "reports"
    args = [*reference.suite_args(), "--requirement=FLEET-AGT-*", *workers]
    suite = subprocess.Popen(
        suite_command(args, report_dir),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    suite_pids: set[int] = {suite.pid}
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not strays(*suite_pids):
            suite_pids |= set(child_pids(suite.pid))
            time.sleep(0.1)
        assert strays(*suite_pids), "the suite never launched an agent"
        suite.send_signal(sig)  # the controller alone, as `kill PID` or a CI cancel does
        output, _ = suite.communicate(timeout=90)
    finally:
        if suite.poll() is None:
            suite.kill()
            suite.wait(timeout=10)
    assert suite.returncode == 2, output[-3000:]
    path = report_dir / "conformance.json"
    assert path.exists(), output[-3000:]
    report = json.loads(path.read_text())
    jsonschema.validate(report, report_schema())
    cert = report["certification"]
    assert cert["verdict"] == "INCOMPLETE" and cert["interrupted"] and not cert["certified"]
    assert report["scope"]["interrupted"] is True
    assert any("interrupted" in m["reason"] for m in cert["not_judged"]), cert
    assert output.rstrip().splitlines()[-1].startswith("fleet-conformance: INCOMPLETE"), output
    deadline = time.monotonic() + 10
    while strays(*suite_pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert strays(*suite_pids) == [], output[-3000:]


def test_child_pids_finds_this_process_children() -> None:
    with subprocess.Popen(["sleep", "5"]) as child:
        try:
            assert child.pid in child_pids()
        finally:
            child.kill()
