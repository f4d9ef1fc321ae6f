"""Run the kill matrix over many Hypothesis seeds and write the detection rate per target.

Not a test: a measurement. Each bundled target (reference and faulty twins,
``fixtures/kill_matrix.toml``) is started once; the real suite runs against
it once per seed, exactly as the kill-matrix self-test does. A run counts as
*exact* when the failing and warning requirement IDs are exactly the
expected ones. Output: ``reports/detection.json`` (``--out`` to change),
rewritten as each case finishes; rows already there for the same profile and
seeds are kept, and cases not named with ``--case`` that have a row are not
measured again (``--fresh`` starts over).

    python scripts/detection_rate.py --seeds 20 --jobs 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.detection_file import resumable_rows  # noqa: E402
from benchmarks.findings import counterexample_exchanges, first_finding_seconds  # noqa: E402
from fixtures.kill_matrix import KillCase, load  # noqa: E402
from tests.suite_runner import run_suite  # noqa: E402


def measure(case: KillCase, seeds: list[int], profile: str) -> dict[str, Any]:
    """Run the suite against one case's target for every seed."""
    runs: list[dict[str, Any]] = []
    expected = {"fail": sorted(case.fail), "warn": sorted(case.warn)}
    with case.started() as target_args:
        for seed in seeds:
            with tempfile.TemporaryDirectory() as work:
                started = time.monotonic()
                run = run_suite(
                    [
                        *target_args,
                        f"--hypothesis-seed={seed}",
                        f"--profile={profile}",
                        "--request-timeout=1",
                        "-q",
                    ],
                    Path(work),
                )
                seconds = time.monotonic() - started
                reports = Path(work) / "reports"
                first_must = first_finding_seconds(reports, must_only=True)
                first_any = first_finding_seconds(reports, must_only=False)
            found = set(case.fail or case.warn)
            length = counterexample_exchanges(run.report or {}, found)
            fails = sorted(run.ids("fail")) if run.report else []
            warns = sorted(run.ids("warn")) if run.report else []
            errors = sorted(run.ids("error")) if run.report else ["<no report>"]
            runs.append(
                {
                    "seed": seed,
                    "seconds": round(seconds, 2),
                    "fail": fails,
                    "warn": warns,
                    "error": errors,
                    "exact": fails == expected["fail"] and warns == expected["warn"] and not errors,
                    "first_must_seconds": first_must,
                    "first_finding_seconds": first_any,
                    "counterexample_exchanges": length,
                }
            )
            print(
                f"{case.name:28} seed={seed:<12} exact={runs[-1]['exact']} {seconds:.1f}s",
                flush=True,
            )
    exact = sum(1 for r in runs if r["exact"])
    firsts = [r["first_must_seconds"] for r in runs if r["first_must_seconds"] is not None]
    anys = [r["first_finding_seconds"] for r in runs if r["first_finding_seconds"] is not None]
    lengths = [r["counterexample_exchanges"] for r in runs if r["counterexample_exchanges"]]
    return {
        "expected": expected,
        "runs": len(runs),
        "exact": exact,
        "detection_rate": exact / len(runs),
        "median_seconds": statistics.median(r["seconds"] for r in runs),
        "worst_seconds": max(r["seconds"] for r in runs),
        "first_must_median_seconds": statistics.median(firsts) if firsts else None,
        "first_must_worst_seconds": max(firsts) if firsts else None,
        "first_finding_median_seconds": statistics.median(anys) if anys else None,
        "counterexample_median_exchanges": statistics.median(lengths) if lengths else None,
        "counterexample_worst_exchanges": max(lengths) if lengths else None,
        "inexact_runs": [r for r in runs if not r["exact"]],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=20, help="how many seeds (default 20)")
    parser.add_argument("--first-seed", type=int, default=1, help="seeds are consecutive from here")
    parser.add_argument("--profile", default="quick", choices=["quick", "full", "nightly"])
    parser.add_argument("--jobs", type=int, default=2, help="targets measured in parallel")
    parser.add_argument("--case", action="append", help="only these kill-matrix cases (repeatable)")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "detection.json")
    parser.add_argument("--matrix", type=Path, help="another kill-matrix TOML file")
    parser.add_argument(
        "--fresh", action="store_true", help="forget rows already in --out (default: keep them)"
    )
    args = parser.parse_args(argv)
    matrix = load(args.matrix) if args.matrix else load()
    unknown = sorted(set(args.case or ()) - set(matrix))
    if unknown:
        parser.error(f"not kill-matrix cases: {', '.join(unknown)}")
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    rows = {} if args.fresh else resumable_rows(args.out, args.profile, seeds)
    rows = {name: row for name, row in rows.items() if name in matrix}  # cases since removed
    chosen = [c for c in (args.case or sorted(matrix)) if c not in rows or args.case]
    started = dt.datetime.now(dt.UTC)
    lock = threading.Lock()

    def write() -> dict[str, Any]:
        report = {
            "date": started.isoformat(timespec="seconds"),
            "profile": args.profile,
            "seeds": seeds,
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "targets": dict(sorted(rows.items())),
            "all_exact": all(r["exact"] == r["runs"] for r in rows.values()),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        return report

    def one(name: str) -> None:
        row = measure(matrix[name], seeds, args.profile)
        with lock:  # each finished case is kept at once: a long run can stop any time
            rows[name] = row
            write()

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for future in [pool.submit(one, name) for name in chosen]:
            future.result()
    report = write()
    for name, row in rows.items():
        print(f"{name:28} {row['exact']}/{row['runs']} exact, median {row['median_seconds']} s")
    print(f"written: {args.out}")
    return 0 if report["all_exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
