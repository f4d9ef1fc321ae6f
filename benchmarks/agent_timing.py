"""Agents on the spec's own timing: what a complete OpAMP agent verdict costs.

One run of the suite, the way a user runs it against a real agent: the
bundled reference OpAMP agent launched through ``--agent-cmd`` at the spec's
default timing (30 s poll interval, 30 s retry floor; cap 120 s), the quick
profile, ``-n 2``. It records the wall time, the certification verdict,
each AGT requirement's verdict (with the remedy of those not judged), and
whether every applicable AGT MUST was judged: the goal is a complete
verdict in at most five minutes (issue 17, item 6).

    python -m benchmarks.agent_timing --out reports/agent-timing.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import emit
from conformance.agent import reference
from tests.suite_runner import suite_command, suite_env

#: The goal for a complete verdict, in seconds of wall time.
GOAL_SECONDS = 300.0
#: Bound on one measured run, in seconds.
RUN_LIMIT = 1800


def timed_run(transport: str, profile: str, jobs: int) -> dict[str, Any]:
    """One suite run against the reference OpAMP agent at the spec's timing."""
    args = reference.opamp_suite_args(
        transport=transport, poll=reference.SPEC_POLL, backoff_scale=reference.SPEC_BACKOFF_SCALE
    )
    args += [f"--profile={profile}", "-q"]
    if jobs > 1:
        args += ["-n", str(jobs)]
    with tempfile.TemporaryDirectory(prefix="fc-agent-timing-") as work:
        command = suite_command(args, Path(work) / "reports")
        env = suite_env()
        started = time.monotonic()
        proc = subprocess.run(
            command,
            cwd=work,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            timeout=RUN_LIMIT,
            check=False,
        )
        seconds = time.monotonic() - started
        path = Path(work) / "reports" / "conformance.json"
        report: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    agent_rules = [r for r in report.get("requirements", []) if r["id"].startswith("AGT-")]
    musts = [r for r in agent_rules if r["level"] == "MUST"]
    judged = [r for r in musts if r["verdict"] in ("pass", "warn", "fail")]
    applicable = [r for r in musts if r["verdict"] != "not applicable"]
    certification = report.get("certification", {}).get("verdict")
    complete = bool(report) and len(judged) == len(applicable)
    return {
        "transport": transport,
        "profile": profile,
        "jobs": jobs,
        "agent_poll_seconds": reference.SPEC_POLL,
        "agent_retry_floor_seconds": reference.OPAMP_TIMING.floor * reference.SPEC_BACKOFF_SCALE,
        "agent_backoff_cap_seconds": reference.OPAMP_TIMING.cap * reference.SPEC_BACKOFF_SCALE,
        "seconds": round(seconds, 1),
        "exit": proc.returncode,
        "certification": certification,
        "agt_must_judged": len(judged),
        "agt_must_applicable": len(applicable),
        "complete": complete,
        "goal_seconds": GOAL_SECONDS,
        "goal_met": complete and seconds <= GOAL_SECONDS,
        "verdicts": {r["id"]: r["verdict"] for r in agent_rules},
        "not_judged": {
            r["id"]: {"reason": r.get("reason", ""), "remedy": r.get("remedy", "")}
            for r in agent_rules
            if r["verdict"] == "not judged"
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transport", action="append", choices=["http", "ws"])
    parser.add_argument("--profile", default="quick", choices=["quick", "full", "nightly"])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path)
    options = parser.parse_args(argv)
    runs = []
    for transport in options.transport or ["http"]:
        row = timed_run(transport, options.profile, options.jobs)
        print(
            f"{transport}: {row['seconds']} s, {row['certification']},"
            f" {row['agt_must_judged']}/{row['agt_must_applicable']} AGT MUST judged",
            flush=True,
        )
        runs.append(row)
    figures = {
        "measured": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "runs": runs,
    }
    return emit(figures, options.out)


if __name__ == "__main__":
    sys.exit(main())
