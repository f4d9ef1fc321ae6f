"""``conformance.json``: the machine-readable result of a run (certification artefact)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conformance import SPEC_VERSION, __version__
from conformance.certification import certify
from conformance.verdicts import Verdict

if TYPE_CHECKING:  # the plugin imports this module: no import cycle at run time
    from conformance.plugin.results import Results

REPORT_FORMAT = 1
#: The JSON Schema every conformance.json of this format follows.
SCHEMA_PATH = Path(__file__).parent / "schemas" / f"conformance-report.v{REPORT_FORMAT}.schema.json"


def report_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    return schema


def build_report(
    results: Results,
    *,
    targets: list[str],
    profile: str,
    strict: bool,
    seed: str | None,
    started: str,
    finished: str,
    exit_status: int,
) -> dict[str, Any]:
    counts = {v.value: results.count(v) for v in Verdict}
    requirements = [r.to_json() for r in results.by_id.values()]
    return {
        "format": REPORT_FORMAT,
        "suite": "fleet-conformance",
        "suite_version": __version__,
        "spec_version": SPEC_VERSION,
        "targets": targets,
        "profile": profile,
        "strict": strict,
        "hypothesis_seed": seed,
        "started": started,
        "finished": finished,
        "exit_status": exit_status,
        "counts": counts,
        "certification": certify(requirements, strict).to_json(),
        "requirements": requirements,
    }


def write_report(report: dict[str, Any], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "conformance.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path
