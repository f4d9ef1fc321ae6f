"""``reports/mutation.json``: the mutants' records, their classification and the scores.

Format 1. Top level: ``format``, ``date``, the plan (``profile``, ``seeds``,
``sample``, ``jobs``, ``operators``, exclusions), ``cosmic_ray`` (version),
``score`` (killed / (killed + blind spots) over every measured mutant),
``totals``, ``areas``, ``targets`` and ``files`` (each a tally: measured,
killed, survived, equivalent, blind spots, blind spots whose run was no
longer CERTIFIED, harness failures, score, kill outcomes, enumerated and
the share of them measured), ``baselines`` (the unmutated runs),
``triage`` (entries, stale ones, listed mutants that were killed),
``blind_spots`` (ids) and ``mutants`` (one record each: area,
target, file, line, definition, operator, occurrence, source line, mutated
line, diff, status, seeds, per-seed killed flags, outcome, killed_by,
seconds, and every suite run with its findings and its verdict changes
against the baseline).

A record's *status*: ``killed``, ``equivalent`` (survived, listed in the
triage file), ``blind-spot`` (survived, not listed) or ``harness-failure``
(a run produced no report: neither killed nor survived, left out of the
score).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from benchmarks.detection_file import same_plan
from benchmarks.mutation_areas import AREAS
from benchmarks.mutation_mutants import Key
from benchmarks.mutation_triage import Equivalent

REPORT_FORMAT = 1
#: Outcomes of a suite run that kill the mutant.
KILLING = ("findings", "timeout", "crash")
#: Outcomes that say nothing about the mutant: the measurement itself failed.
FAILED = ("no-report", "worker-failure")
#: A killed mutant is *reliably* killed when it is killed on this share of its seeds.
RELIABLE_SHARE = 0.95
STATUSES = ("killed", "equivalent", "blind-spot", "harness-failure")


def record_key(record: dict[str, Any]) -> Key:
    return Key(record["file"], record["operator"], record["source"], record["occurrence"])


def classify(record: dict[str, Any], triage: dict[Key, Equivalent]) -> None:
    """Set ``status`` (and the triage fields) of a record from its runs and the triage."""
    runs = record["runs"]
    entry = triage.get(record_key(record))
    record.pop("triage", None)
    record.pop("triage_mismatch", None)
    if any(r["outcome"] in FAILED for r in runs):
        record["status"] = "harness-failure"
    elif any(r["outcome"] in KILLING for r in runs):
        record["status"] = "killed"
    elif entry is not None:
        record["status"] = "equivalent"
    else:
        record["status"] = "blind-spot"
    if entry is not None:
        record["triage"] = entry.reason
        if entry.mutated is not None and entry.mutated != record["mutated"]:
            record["triage_mismatch"] = f"the triage entry expects {entry.mutated!r}"


def tally(records: list[dict[str, Any]], enumerated: int | None = None) -> dict[str, Any]:
    """Counts and score of a group of records (``enumerated``: mutants the group has)."""
    count = {s: sum(1 for r in records if r["status"] == s) for s in STATUSES}
    judged = count["killed"] + count["blind-spot"]
    seconds = [r["seconds"] for r in records]
    row: dict[str, Any] = {
        "measured": len(records),
        "killed": count["killed"],
        "survived": count["equivalent"] + count["blind-spot"],
        "equivalent": count["equivalent"],
        "blind_spots": count["blind-spot"],
        "harness_failures": count["harness-failure"],
        # Blind spots the suite noticed without a finding: a requirement went from judged
        # to not judged, so the run was no longer CERTIFIED.
        "blind_spots_uncertified": sum(1 for r in records if _uncertified(r)),
        "score": round(count["killed"] / judged, 4) if judged else None,
        "kill_outcomes": {
            o: sum(1 for r in records if r["status"] == "killed" and r["outcome"] == o)
            for o in KILLING
        },
        "median_seconds": round(statistics.median(seconds), 2) if seconds else None,
        "worst_seconds": max(seconds) if seconds else None,
    }
    several = [r for r in records if r["status"] == "killed" and len(r["killed_seeds"]) > 1]
    if several:
        row["killed_on_several_seeds"] = len(several)
        row["reliably_killed"] = sum(1 for r in several if reliable(r["killed_seeds"]))
    if enumerated is not None:
        row["enumerated"] = enumerated
        row["coverage"] = round(len(records) / enumerated, 4) if enumerated else None
    return row


def _uncertified(record: dict[str, Any]) -> bool:
    return record["status"] == "blind-spot" and any(
        r.get("certification") not in (None, "CERTIFIED") for r in record["runs"]
    )


def reliable(flags: list[bool]) -> bool:
    """Killed on at least :data:`RELIABLE_SHARE` of the seeds (19 of 20)."""
    return sum(flags) >= math.ceil(RELIABLE_SHARE * len(flags))


def aggregate(
    records: list[dict[str, Any]], enumerated: dict[str, dict[str, int]]
) -> dict[str, Any]:
    """The score and the tallies per area, target and file.

    ``enumerated``: ``{"areas": {area: mutants}, "files": {file: mutants}}``.
    """
    areas = {
        name: tally([r for r in records if r["area"] == name], count)
        for name, count in enumerated["areas"].items()
    }
    targets = {}
    for target in sorted({AREAS[a].target for a in areas}):
        names = [a for a in areas if AREAS[a].target == target]
        total = sum(enumerated["areas"][a] for a in names)
        targets[target] = {"areas": names} | tally(
            [r for r in records if r["area"] in names], total
        )
    files = {
        file: tally([r for r in records if r["file"] == file], count)
        for file, count in sorted(enumerated["files"].items())
    }
    return {
        "score": tally(records)["score"],
        "totals": tally(records, sum(enumerated["areas"].values())),
        "areas": areas,
        "targets": targets,
        "files": files,
    }


def triage_summary(
    records: list[dict[str, Any]], triage: dict[Key, Equivalent], known: Iterable[Key]
) -> dict[str, Any]:
    """How the triage file fits the mutants: stale entries, listed mutants that were killed."""
    enumerated = set(known)
    measured = {record_key(r) for r in records}
    return {
        "entries": len(triage),
        "measured": sum(1 for k in triage if k in measured),
        "stale": sorted(k.text() for k in triage if k not in enumerated),
        "killed_though_listed": sorted(
            r["id"] for r in records if r["status"] == "killed" and "triage" in r
        ),
        "mismatched": sorted(r["id"] for r in records if "triage_mismatch" in r),
    }


def finish(report: dict[str, Any], triage: dict[Key, Equivalent], known: Iterable[Key]) -> None:
    """Classify every record and (re)compute the scores, tallies and triage summary in place."""
    records = sorted(report["mutants"], key=lambda r: (r["area"], r["file"], r["line"]))
    for record in records:
        classify(record, triage)
    scores = aggregate(records, report["enumerated"])
    for name, row in scores["areas"].items():
        report["areas"].setdefault(name, {}).update(row)
    report |= {k: v for k, v in scores.items() if k != "areas"}
    report["triage"] = triage_summary(records, triage, known)
    report["blind_spots"] = [r["id"] for r in records if r["status"] == "blind-spot"]
    report["mutants"] = records


def write(report: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    tmp.replace(out)


def earlier_records(out: Path, profile: str, seeds: list[int]) -> dict[str, dict[str, Any]]:
    """Records of an earlier report with the same profile and seeds (``--resume``)."""
    kept = same_plan(out, profile, seeds).get("mutants", [])
    return {r["id"]: r for r in kept if r.get("status") != "harness-failure"}
