"""The nightly GitHub Actions workflow: its suite step composes a valid command line.

CI cannot run GitHub Actions, so the run step's shell script is executed
here with a stand-in ``fleet-conformance`` that records its arguments, and
every option it passes is checked against the suite's own ``--help``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.baseline import load as load_baseline
from tests.suite_runner import REPO

WORKFLOW = REPO / ".github" / "workflows" / "nightly.yml"


def workflow() -> dict[Any, Any]:
    data: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    return data


def steps() -> list[dict[str, Any]]:
    (job,) = workflow()["jobs"].values()
    found: list[dict[str, Any]] = job["steps"]
    return found


def suite_step() -> dict[str, Any]:
    return next(s for s in steps() if "fleet-conformance" in s.get("run", ""))


def run_step(env: dict[str, str], tmp_path: Path) -> tuple[int, list[str]]:
    """Run the suite step's script with a recording stand-in for the command."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "argv"
    stub = bin_dir / "fleet-conformance"
    stub.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\n')
    stub.chmod(0o755)
    proc = subprocess.run(
        ["bash", "-e", "-c", suite_step()["run"]],
        env={"PATH": f"{bin_dir}:{os.environ['PATH']}", **env},
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    args = record.read_text().splitlines() if record.exists() else []
    return proc.returncode, args


def test_runs_nightly_and_on_demand() -> None:
    triggers = workflow().get("on") or workflow()[True]  # YAML 1.1 reads `on` as true
    assert triggers["schedule"][0]["cron"]
    assert "workflow_dispatch" in triggers


def test_suite_step_passes_secrets_and_a_baseline(tmp_path: Path) -> None:
    env = {
        "TARGET": "http://a.example:8220 http://b.example:8220",
        "TARGET_HEADER": "Authorization: ApiKey abc def",
        "ENROLLMENT_TOKEN": "tok",
    }
    code, args = run_step(env, tmp_path)
    assert code == 0
    assert "--target=http://a.example:8220" in args and "--target=http://b.example:8220" in args
    assert args[args.index("--target-header") + 1] == "Authorization: ApiKey abc def"
    assert "--enrollment-token=tok" in args
    assert "--profile=nightly" in args
    assert args[args.index("-n") + 1] == "auto"
    baseline = next(a for a in args if a.startswith("--expected-failures="))
    load_baseline(REPO / baseline.split("=", 1)[1])  # exists and is a valid baseline


def test_missing_target_secret_fails_clearly(tmp_path: Path) -> None:
    code, args = run_step({"TARGET": ""}, tmp_path)
    assert code == 2 and args == []


def test_every_option_it_uses_exists() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "pytest", "--help", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    ).stdout
    used = set(re.findall(r"(--[a-z][a-z-]+)", suite_step()["run"]))
    assert used, "the step passes options"
    for option in used:
        assert option in help_text, option


@pytest.mark.parametrize("name", ["Upload the reports", "Render the Allure report"])
def test_reports_are_kept_even_when_the_run_fails(name: str) -> None:
    step = next(s for s in steps() if s.get("name") == name)
    assert step["if"] == "always()"


def test_uploads_the_report_directory() -> None:
    upload = next(s for s in steps() if "upload-artifact" in s.get("uses", ""))
    assert upload["with"]["path"] == "reports/"
