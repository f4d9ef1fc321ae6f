"""One suite run against a target started from a (mutated) copy of the repository.

Run from inside the copy, with the copy first on ``PYTHONPATH``
(:mod:`benchmarks.mutation` does this), so that everything this process
starts imports the copy's code: the kill-matrix case's server processes
(``KillCase.started()``, unchanged), the suite itself, and the agents the
suite launches through ``--agent-cmd``.

    python -m benchmarks.mutation_worker --run server --seed 1 --out result.json

The result (JSON): ``outcome`` (``clean``, ``findings``, ``timeout``,
``crash``: a server did not start or died, ``no-report``: the suite wrote
no report), the failing / warning / erroring requirement IDs, harness
errors, the certification verdict, every requirement's verdict and the
seconds the run took.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import fixtures.kill_matrix
from benchmarks.mutation_areas import RUNS, Run
from conformance.plugin.embedded import EmbeddedError, EmbeddedServer
from fixtures.kill_matrix import VARIANTS, KillCase, load
from tests.suite_runner import suite_command, suite_env

#: How long the suite gets to tear down (agents included) after SIGTERM at its deadline.
TEARDOWN_GRACE = 30.0


class _RecordedServer(EmbeddedServer):
    """An :class:`EmbeddedServer` that keeps a list of every instance, to check them after."""

    started: ClassVar[list[_RecordedServer]] = []

    def __init__(self, module: str = "fixtures.reference.server", args: Sequence[str] = ()):
        super().__init__(module, args)
        _RecordedServer.started.append(self)


def case_for(run: Run) -> KillCase:
    """The kill-matrix case a run starts from, narrowed to the role it tests."""
    case = load()[run.case]
    if run.variant is not None:
        case = case.with_variant(VARIANTS[run.variant])
    if run.keep == "server":
        return dataclasses.replace(case, agent=None, opamp_agent=None)
    if run.keep == "agent":
        return dataclasses.replace(case, behaviour=None, suite_args=())
    return case


def run_bounded(args: list[str], workdir: Path, timeout: float) -> tuple[int | None, str]:
    """The suite as ``tests.suite_runner`` runs it, stopped like a user's Ctrl-C at ``timeout``.

    Returns the exit status (``None`` after a timeout) and the console output's tail.
    """
    report_dir = workdir / "reports"
    log = workdir / "console.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            suite_command(args, report_dir),
            cwd=workdir,
            env=suite_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        status: int | None
        try:
            status = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            status = None
            # SIGTERM is an interruption to the suite: it stops its agents and writes its report.
            for sig, grace in ((signal.SIGTERM, TEARDOWN_GRACE), (signal.SIGKILL, 10.0)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
    return status, log.read_text(errors="replace")[-4000:]


def summarise(report: dict[str, Any] | None) -> dict[str, Any]:
    if report is None:
        return {"fail": [], "warn": [], "error": [], "harness_errors": [], "verdicts": {}}
    verdicts = {r["id"]: r["verdict"] for r in report["requirements"]}
    blockers = report["certification"]["blockers"]
    return {
        "fail": sorted(i for i, v in verdicts.items() if v == "fail"),
        "warn": sorted(i for i, v in verdicts.items() if v == "warn"),
        "error": sorted(i for i, v in verdicts.items() if v == "error"),
        "harness_errors": [b for b in blockers if b.startswith("harness error:")],
        "certification": report["certification"]["verdict"],
        "verdicts": verdicts,
    }


def measure(run: Run, seed: int, profile: str, timeout: float) -> dict[str, Any]:
    """Start the run's target from this copy, run the suite once, and say what it found."""
    case = case_for(run)
    # This process runs one case: KillCase.started() may as well build recorded servers.
    vars(fixtures.kill_matrix)["EmbeddedServer"] = _RecordedServer
    started = time.monotonic()
    result: dict[str, Any] = {"run": run.name, "seed": seed}
    with tempfile.TemporaryDirectory(prefix="fleet-conformance-mutant-") as tmp:
        work = Path(tmp)
        try:
            with case.started() as target_args:
                args = [
                    *target_args,
                    f"--hypothesis-seed={seed}",
                    f"--profile={profile}",
                    # As the kill matrix: detection is measured, not the smallest example.
                    "--request-timeout=1",
                    "--shrink-budget=0.5",
                    "-q",
                ]
                status, console = run_bounded(args, work, timeout)
                dead = [s for s in _RecordedServer.started if not s.alive()]
                crash = dead[0].log_tail() if dead else None
        except EmbeddedError as exc:
            result |= summarise(None) | {"outcome": "crash", "crash": str(exc)[-3000:]}
            result["seconds"] = round(time.monotonic() - started, 2)
            return result
        path = work / "reports" / "conformance.json"
        report = json.loads(path.read_text()) if path.exists() else None
    result |= summarise(report)
    result["exit_status"] = status
    found = result["fail"] or result["warn"] or result["error"] or result["harness_errors"]
    if crash is not None:
        result |= {"outcome": "crash", "crash": crash}
    elif status is None:
        result["outcome"] = "timeout"
    elif report is None:
        result |= {"outcome": "no-report", "console": console}
    else:
        result["outcome"] = "findings" if found else "clean"
    result["seconds"] = round(time.monotonic() - started, 2)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", choices=sorted(RUNS), required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    run = RUNS[args.run]
    result = measure(run, args.seed, args.profile, run.timeout)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
