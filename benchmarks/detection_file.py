"""The file ``scripts/detection_rate.py`` writes: which rows a new measurement can keep."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def resumable_rows(out: Path, profile: str, seeds: list[int]) -> dict[str, Any]:
    """Rows already measured with the same profile and seeds (a resumed or split measurement)."""
    try:
        earlier = json.loads(out.read_text())
    except (OSError, ValueError):
        return {}
    if earlier.get("profile") != profile or earlier.get("seeds") != seeds:
        return {}
    rows: dict[str, Any] = earlier.get("targets", {})
    return rows
