"""``conformance.json``: the machine-readable result of a run (certification artefact)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conformance import SPEC_VERSION, __version__
from conformance.certification import Certification, certify
from conformance.scope import Scope
from conformance.verdicts import Verdict

if TYPE_CHECKING:  # the plugin imports this module: no import cycle at run time
    from conformance.plugin.results import Results

#: 2: *skip* and *not run* became *not applicable*, *not judged* and out-of-scope roles;
#: the certification has a three-way ``verdict``; the run's ``scope`` is recorded.
REPORT_FORMAT = 2
#: The JSON Schema every conformance.json of this format follows.
SCHEMA_PATH = Path(__file__).parent / "schemas" / f"conformance-report.v{REPORT_FORMAT}.schema.json"


def report_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    return schema


def certification_of(results: Results, strict: bool, interrupted: bool) -> Certification:
    """The certification verdict of finalised results (the requirements in scope)."""
    return certify(
        [r.to_json() for r in results.in_scope()],
        strict,
        interrupted=interrupted,
        harness_errors=results.orphans,
    )


def build_report(
    results: Results,
    *,
    scope: Scope,
    targets: list[str],
    strict: bool,
    seed: str | None,
    started: str,
    finished: str,
    exit_status: int,
) -> dict[str, Any]:
    """The report of finalised results; out-of-scope requirements are named in the scope only."""
    in_scope = results.in_scope()
    requirements = [r.to_json() for r in in_scope]
    counts = {
        v.value: sum(1 for r in in_scope if r.verdict is v)
        for v in Verdict
        if v is not Verdict.OUT_OF_SCOPE
    }
    return {
        "format": REPORT_FORMAT,
        "suite": "fleet-conformance",
        "suite_version": __version__,
        "spec_version": SPEC_VERSION,
        "targets": targets,
        "profile": scope.profile,
        "strict": strict,
        "hypothesis_seed": seed,
        "started": started,
        "finished": finished,
        "exit_status": exit_status,
        "scope": scope.to_json(results.transports_judged)
        | {"out_of_scope_requirements": results.count(Verdict.OUT_OF_SCOPE)},
        "counts": counts,
        "certification": certification_of(results, strict, scope.interrupted).to_json(),
        "requirements": requirements,
    } | ({"coverage": results.coverage} if results.coverage else {})


def write_report(report: dict[str, Any], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "conformance.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path
