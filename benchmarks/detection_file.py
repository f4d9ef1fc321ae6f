"""The file ``scripts/detection_rate.py`` writes: which rows a new measurement can keep."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def same_plan(out: Path, profile: str, seeds: list[int]) -> dict[str, Any]:
    """An earlier measurement file of the same profile and seeds ({} if none or another plan)."""
    try:
        earlier: dict[str, Any] = json.loads(out.read_text())
    except (OSError, ValueError):
        return {}
    if earlier.get("profile") != profile or earlier.get("seeds") != seeds:
        return {}
    return earlier


def resumable_rows(out: Path, profile: str, seeds: list[int]) -> dict[str, Any]:
    """Rows already measured with the same profile and seeds (a resumed or split measurement)."""
    rows: dict[str, Any] = same_plan(out, profile, seeds).get("targets", {})
    return rows
