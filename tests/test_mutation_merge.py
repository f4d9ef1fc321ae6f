"""Shards of a mutation run merge into the report one run would have written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks import mutation

REPORT = mutation.REPO / "reports" / "mutation.json"
#: The smallest area: enumerating it is the test's main cost.
AREA = "fleet-agent"


def _one_area() -> dict[str, Any]:
    whole = json.loads(REPORT.read_text())
    whole["mutants"] = [m for m in whole["mutants"] if m["area"] == AREA]
    whole["planned"] = {AREA: whole["planned"][AREA]}
    return dict(whole)


def test_two_shards_merge_into_the_whole(tmp_path: Path) -> None:
    whole = _one_area()
    parts = []
    for k in range(2):
        part = whole | {"mutants": whole["mutants"][k::2]}
        part["planned"] = {AREA: len(part["mutants"])}
        path = tmp_path / f"part{k}.json"
        path.write_text(json.dumps(part))
        parts.append(path)
    out = tmp_path / "merged.json"
    assert mutation.main(["--merge", *map(str, parts), "--out", str(out)]) == 0
    merged = json.loads(out.read_text())
    assert sorted(m["id"] for m in merged["mutants"]) == sorted(m["id"] for m in whole["mutants"])
    assert merged["planned"] == whole["planned"]
    row = merged["areas"][AREA]
    assert row["measured"] == len(whole["mutants"])
    assert row["killed"] == sum(1 for m in whole["mutants"] if m["status"] == "killed")
    assert row["killed"] + row["blind_spots"] + row["equivalent"] == row["measured"]
    assert set(merged["blind_spots"]) == {
        m["id"] for m in merged["mutants"] if m["status"] == "blind-spot"
    }


def test_reports_of_different_plans_are_refused(tmp_path: Path) -> None:
    whole = _one_area()
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(whole))
    b.write_text(json.dumps(whole | {"seeds": [7]}))
    assert mutation.main(["--merge", str(a), str(b), "--out", str(tmp_path / "m.json")]) == 2
