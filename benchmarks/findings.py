"""When a run found its first finding, and how long the reported counterexample is.

Read from the files a run leaves in its report directory: the Allure
results (per-test start and stop times, and one attachment per finding,
named ``ID fail`` or ``ID warn``) and ``conformance.json`` (the evidence).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from conformance.catalogue import CATALOGUE, Level

#: One exchange in a transcript: "#3 ..." (OpAMP exchanges and Fleet calls),
#: "t=+  1.234s enroll ..." (a request an agent made to the mock Fleet server) or
#: "t=+  1.234s http  << seq=..." / "ws#2  << ..." (a message an OpAMP agent sent
#: to the mock OpAMP server).
_EXCHANGE = re.compile(r"^(#\d+\s|t=\+\s*[\d.]+s (enroll|checkin|http\s+<<|ws#\d+\s+<<)\s)")


def _results(report_dir: Path) -> list[dict[str, Any]]:
    found = []
    for path in (report_dir / "allure-results").glob("*-result.json"):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return found


def first_finding_seconds(report_dir: Path, must_only: bool) -> float | None:
    """Seconds from the first test's start to the end of the first test with a finding."""
    results = _results(report_dir)
    if not results:
        return None
    start = min(r["start"] for r in results if "start" in r)
    ends = []
    for result in results:
        for attachment in result.get("attachments", []):
            rid, _, verdict = str(attachment.get("name", "")).rpartition(" ")
            if verdict not in ("fail", "warn") or rid not in CATALOGUE:
                continue
            if must_only and CATALOGUE[rid].level is not Level.MUST:
                continue
            ends.append(result["stop"])
    return round((min(ends) - start) / 1000, 2) if ends else None


def counterexample_exchanges(report: dict[str, Any], ids: set[str]) -> int | None:
    """Exchanges in the shortest evidence reported for any of ``ids``."""
    lengths = []
    for req in report.get("requirements", []):
        if req["id"] not in ids:
            continue
        for finding in req.get("evidence", []):
            if finding.get("verdict") in ("fail", "warn") and finding.get("evidence"):
                lines = str(finding["evidence"]).splitlines()
                count = sum(1 for line in lines if _EXCHANGE.match(line))
                if count:
                    lengths.append(count)
    return min(lengths) if lengths else None
