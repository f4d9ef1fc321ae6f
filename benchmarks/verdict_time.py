"""Time to verdict and memory: whole suite runs against the bundled reference targets.

Each run is ``pytest conformance/suite`` with no target (the embedded
reference server and reference agents), one profile, one process or
``-n 2``, and one part: the server rules (``--exclude-requirement`` of
``FLEET-AGT-*`` and ``AGT-*``) or the agent rules (``--requirement`` of
the same two). While
it runs, the suite's process tree is sampled from ``/proc`` for the peak
resident memory of the main pytest process (``VmHWM``) and of the whole
tree (summed ``VmRSS``, sampled every 0.2 s).

    python -m benchmarks.verdict_time --profile quick --profile full
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import emit
from tests.suite_runner import suite_command, suite_env

PARTS = {
    "server": ["--exclude-requirement=FLEET-AGT-*", "--exclude-requirement=AGT-*"],
    "agent": ["--requirement=FLEET-AGT-*", "--requirement=AGT-*"],
}
#: Where the report of a measured run that did not pass is kept.
FAILED_RUNS = Path(tempfile.gettempdir()) / "fleet-conformance-bench-failures"
#: Bound on one measured run, in seconds.
RUN_LIMIT = 3 * 3600


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _tree(root: int) -> list[int]:
    """``root`` and every live descendant, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def timed_run(profile: str, part: str, jobs: int) -> dict[str, Any]:
    """One suite run: wall seconds, exit code, counts and memory peaks."""
    with tempfile.TemporaryDirectory(prefix="fc-bench-") as work:
        args = [f"--profile={profile}", "-q", *PARTS[part]]
        if jobs > 1:
            args += ["-n", str(jobs)]
        command = suite_command(args, Path(work) / "reports")
        env = suite_env()
        started = time.monotonic()
        proc = subprocess.Popen(
            command,
            cwd=work,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        main_peak = tree_peak = 0
        while proc.poll() is None:
            if time.monotonic() - started > RUN_LIMIT:
                proc.kill()
                break
            main_peak = max(main_peak, _status_kb(proc.pid, "VmHWM"))
            tree_peak = max(tree_peak, sum(_status_kb(p, "VmRSS") for p in _tree(proc.pid)))
            time.sleep(0.2)
        seconds = time.monotonic() - started
        report_path = Path(work) / "reports" / "conformance.json"
        counts = json.loads(report_path.read_text())["counts"] if report_path.exists() else {}
        if proc.returncode != 0 and report_path.exists():
            # A run against the reference should pass: keep the evidence of one that did not.
            FAILED_RUNS.mkdir(parents=True, exist_ok=True)
            kept = FAILED_RUNS / f"{profile}-{part}-jobs{jobs}-{int(time.time())}.json"
            shutil.copyfile(report_path, kept)
    return {
        "seconds": round(seconds, 1),
        "exit": proc.returncode,
        "counts": {k: v for k, v in counts.items() if v},
        "suite_peak_rss_mb": round(main_peak / 1024, 1),
        "tree_peak_rss_mb": round(tree_peak / 1024, 1),
    }


def measure(profiles: list[str], parts: list[str], jobs_list: list[int]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for profile in profiles:
        for part in parts:
            row: dict[str, Any] = {}
            for jobs in jobs_list:
                row[f"jobs_{jobs}"] = timed_run(profile, part, jobs)
                print(f"{profile:8} {part:7} jobs={jobs}: {row[f'jobs_{jobs}']}", flush=True)
            if "jobs_1" in row and "jobs_2" in row and row["jobs_2"]["seconds"]:
                row["speedup_2_jobs"] = round(
                    row["jobs_1"]["seconds"] / row["jobs_2"]["seconds"], 2
                )
            figures.setdefault(profile, {})[part] = row
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="append", choices=["quick", "full", "nightly"])
    parser.add_argument("--part", action="append", choices=sorted(PARTS))
    parser.add_argument("--jobs", type=int, action="append")
    parser.add_argument("--out", type=Path)
    options = parser.parse_args(argv)
    figures = measure(
        options.profile or ["quick"], options.part or sorted(PARTS), options.jobs or [1, 2]
    )
    return emit(figures, options.out)


if __name__ == "__main__":
    sys.exit(main())
