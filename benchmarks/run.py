"""Run the benchmarks and write ``reports/bench.json``.

Four groups: exchange throughput (with this machine's raw ceiling, measured
in the same run), time to verdict per profile and part (one process and
``-n 2``), detection power per kill-matrix case (from the detection runs of
``scripts/detection_rate.py`` named with ``--detection``), and memory (the
suite's peak RSS, from the largest profile measured).

    python -m benchmarks.run                       # quick and full profiles
    python -m benchmarks.run --profile nightly     # add the nightly profile (long)
    python -m benchmarks.run --short               # what CI can afford
    python -m benchmarks.run --throughput-only     # re-measure throughput, keep the rest
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from benchmarks import readme, throughput, verdict_time

REPO = Path(__file__).resolve().parent.parent
PROFILE_ORDER = ("quick", "full", "nightly")


def detection_summary(paths: list[Path]) -> dict[str, Any]:
    """Per kill-matrix case: detection rate, time to first MUST finding, counterexample size.

    A case measured in several files is taken from the newest one.
    """
    cases: dict[str, Any] = {}
    sources = []
    loaded = [json.loads(path.read_text()) for path in paths]
    for path, data in sorted(zip(paths, loaded, strict=True), key=lambda p: p[1].get("date", "")):
        name = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)
        sources.append({"file": name, "date": data.get("date")})
        for name, row in data.get("targets", {}).items():
            cases[name] = {
                "runs": row["runs"],
                "detection_rate": row["detection_rate"],
                "median_run_seconds": row["median_seconds"],
                "first_must_median_seconds": row.get("first_must_median_seconds"),
                "first_must_worst_seconds": row.get("first_must_worst_seconds"),
                "first_finding_median_seconds": row.get("first_finding_median_seconds"),
                "counterexample_median_exchanges": row.get("counterexample_median_exchanges"),
                "counterexample_worst_exchanges": row.get("counterexample_worst_exchanges"),
                "profile": data.get("profile"),
            }
    timed = [c for c in cases.values() if c["first_finding_median_seconds"] is not None]
    return {
        "sources": sources,
        "cases": cases,
        "all_detected": all(c["detection_rate"] == 1.0 for c in cases.values()),
        "cases_with_timing": len(timed),
        "cases_without_timing": sorted(
            n for n, c in cases.items() if c["first_finding_median_seconds"] is None
        ),
    }


def memory_summary(times: dict[str, Any]) -> dict[str, Any]:
    largest = next(p for p in reversed(PROFILE_ORDER) if p in times)
    peaks = {
        f"{part}_{jobs}": run["suite_peak_rss_mb"]
        for part, row in times[largest].items()
        for jobs, run in row.items()
        if jobs.startswith("jobs_")
    }
    trees = [
        run["tree_peak_rss_mb"]
        for row in times[largest].values()
        for jobs, run in row.items()
        if jobs.startswith("jobs_")
    ]
    return {
        "profile": largest,
        "suite_peak_rss_mb": max(peaks.values()),
        "suite_peak_rss_mb_by_run": peaks,
        "process_tree_peak_rss_mb": max(trees),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="1 s throughput, quick profile only")
    parser.add_argument("--profile", action="append", choices=PROFILE_ORDER)
    parser.add_argument(
        "--detection",
        type=Path,
        action="append",
        help="detection_rate.py output(s) to summarise (default: reports/detection*.json)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "bench.json")
    parser.add_argument(
        "--detection-only",
        action="store_true",
        help="keep the other figures of --out and only re-summarise the detection files",
    )
    parser.add_argument(
        "--throughput-only",
        action="store_true",
        help="keep the other figures of --out and only measure throughput again (dated)",
    )
    options = parser.parse_args(argv)
    detection = options.detection or sorted((REPO / "reports").glob("detection*.json"))
    if (options.detection_only or options.throughput_only) and not options.out.is_file():
        parser.error(f"{options.out} does not exist: the -only options keep its other figures")
    if options.detection_only:
        kept = json.loads(options.out.read_text())
        kept["detection"] = detection_summary([p.resolve() for p in detection])
        return _write(kept, options.out)
    if options.throughput_only:
        kept = json.loads(options.out.read_text())
        measured_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        kept["throughput"] = {
            "date": measured_at,
            **throughput.measure(1.0 if options.short else 3.0, [1, 2]),
        }
        return _write(kept, options.out)
    profiles = (
        ["quick"]
        if options.short
        else sorted(set(options.profile or []) | {"quick", "full"}, key=PROFILE_ORDER.index)
    )
    started = dt.datetime.now(dt.UTC)
    bench: dict[str, Any] = {
        "date": started.isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "command": "python -m benchmarks.run " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    bench["throughput"] = throughput.measure(1.0 if options.short else 3.0, [1, 2])
    times = verdict_time.measure(profiles, ["server", "agent"], [1, 2])
    bench["time_to_verdict"] = times
    bench["memory"] = memory_summary(times)
    bench["detection"] = detection_summary([p.resolve() for p in detection])
    bench["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return _write(bench, options.out)


def _write(bench: dict[str, Any], out: Path) -> int:
    """Write ``bench.json`` and, when it is the committed one, the README's tables."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(bench, indent=2) + "\n")
    print(f"written: {out}")
    if out.resolve() == readme.BENCH:
        readme.main([])
    return 0


if __name__ == "__main__":
    sys.exit(main())
