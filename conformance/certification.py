"""Whether a run certifies its target: one rule, applied to a finished report.

The rule is deliberately plain so a vendor can check it by hand against the
per-requirement verdicts: every MUST requirement of the roles under test was
judged and none failed, no requirement ended in a harness error, no baseline
entry is stale, and under ``--conformance-strict`` no SHOULD requirement
warned. A failure excused by ``--expected-failures`` still blocks: a baseline
keeps CI quiet, it does not certify. Skipped MUST requirements (not
applicable to this target, with the reason) do not block, but are named.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RULE = (
    "CERTIFIED when every MUST requirement of the roles under test was judged and"
    " none failed, no requirement ended in a harness error, no baseline entry is"
    " stale, and (with --conformance-strict) no SHOULD requirement warned."
    " Expected failures from a baseline still block; skipped MUST requirements"
    " do not, and are listed."
)


@dataclass
class Certification:
    certified: bool
    #: Requirement IDs that block certification, each with why.
    blockers: list[str] = field(default_factory=list)
    #: MUST requirements skipped as not applicable (listed, not blocking).
    skipped_must: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "certified": self.certified,
            "rule": RULE,
            "blockers": self.blockers,
            "skipped_must": self.skipped_must,
        }

    @property
    def headline(self) -> str:
        return "CERTIFIED" if self.certified else "NOT CERTIFIED"


def certify(requirements: list[dict[str, Any]], strict: bool) -> Certification:
    """Apply :data:`RULE` to the ``requirements`` entries of a report."""
    roles = {r["role"] for r in requirements if r["verdict"] != "not run"}
    blockers: list[str] = []
    skipped: list[str] = []
    for req in requirements:
        verdict, level = req["verdict"], req["level"]
        status = (req.get("baseline") or {}).get("status")
        if status == "stale":
            blockers.append(f"{req['id']}: stale baseline entry")
        elif verdict == "error":
            blockers.append(f"{req['id']}: harness error, not judged")
        elif level == "MUST" and req["role"] in roles:
            if verdict == "fail":
                excused = " (expected failure)" if status == "expected" else ""
                blockers.append(f"{req['id']}: failed{excused}")
            elif verdict == "not run":
                blockers.append(f"{req['id']}: not run")
            elif verdict == "skip":
                skipped.append(req["id"])
        elif strict and level == "SHOULD" and verdict in ("warn", "fail"):
            blockers.append(f"{req['id']}: SHOULD finding under --conformance-strict")
    if not roles:
        blockers.append("nothing was judged")
    return Certification(not blockers, blockers, skipped)
