"""Running the real conformance suite as a subprocess, the way a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

import conformance.suite
from conformance.report_json import report_schema
from fixtures.peers.registry import Peer

SUITE_DIR = Path(next(iter(conformance.suite.__path__)))
REPO = SUITE_DIR.parent.parent
#: Bound on one whole suite run in the self-tests, in seconds.
RUN_TIMEOUT = 300


@dataclass
class SuiteRun:
    """Exit code, console output and the parsed conformance.json of one run."""

    returncode: int
    output: str
    report: dict[str, Any] | None

    def ids(self, verdict: str) -> set[str]:
        assert self.report is not None, self.output
        return {r["id"] for r in self.report["requirements"] if r["verdict"] == verdict}


def suite_command(args: list[str], report_dir: Path) -> list[str]:
    """The command line a user would type to run the suite, reports into ``report_dir``."""
    return [
        sys.executable,
        "-m",
        "pytest",
        str(SUITE_DIR),
        f"--rootdir={REPO}",
        f"--report-dir={report_dir}",
        "-p",
        "no:cacheprovider",
        *args,
    ]


def suite_env() -> dict[str, str]:
    """This process's environment less pytest's own variables, for a nested suite run."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}


def run_suite(args: list[str], workdir: Path, timeout: float = RUN_TIMEOUT) -> SuiteRun:
    """Run ``pytest <suite> ARGS`` in ``workdir`` (own Hypothesis database) and collect results."""
    workdir.mkdir(parents=True, exist_ok=True)
    report_dir = workdir / "reports"
    command = suite_command(args, report_dir)
    env = suite_env()
    proc = subprocess.run(
        command,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    path = report_dir / "conformance.json"
    report = json.loads(path.read_text()) if path.exists() else None
    if report is not None:
        # Every report any self-test produces must follow the published schema.
        jsonschema.validate(report, report_schema(), format_checker=jsonschema.FormatChecker())
    return SuiteRun(proc.returncode, proc.stdout + proc.stderr, report)


def run_peer(peer: Peer, workdir: Path, seed: int, extra: tuple[str, ...] = ()) -> SuiteRun:
    """The suite against one third-party peer (``fixtures/peers``) with its baseline."""
    with peer.started() as args:
        return run_suite(
            [
                *args,
                f"--expected-failures={peer.baseline}",
                f"--hypothesis-seed={seed}",
                "-n",
                "3",
                "-q",
                *extra,
            ],
            workdir,
        )
