"""Whether a run certifies its target: one rule, applied to a finished report.

The rule is plain so a vendor can check it by hand against the
per-requirement verdicts. It looks only at the requirements of the roles
under test (the others are out of scope and absent from the report):

- NOT CERTIFIED when a requirement that counts (every MUST; every SHOULD
  under ``--conformance-strict``) failed, even one excused by an
  ``--expected-failures`` baseline (a baseline keeps CI quiet, it does not
  certify), when a baseline entry is stale, or when a harness error left a
  requirement unjudged;
- INCOMPLETE otherwise when a requirement that counts was *not judged* (each
  is listed with its remedy), when the run was interrupted, or when nothing
  at all was judged;
- CERTIFIED otherwise: every requirement that counts was judged and held,
  or the target showed it does not apply (listed with that evidence).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CERTIFIED = "CERTIFIED"
NOT_CERTIFIED = "NOT CERTIFIED"
INCOMPLETE = "INCOMPLETE"
VERDICTS = (CERTIFIED, NOT_CERTIFIED, INCOMPLETE)

RULE = (
    "CERTIFIED when every MUST requirement of the roles under test (and every SHOULD"
    " one under --conformance-strict) was judged and held, or is not applicable by the"
    " target's own answers. NOT CERTIFIED when one of them failed (a baseline's expected"
    " failure included), a baseline entry is stale, or a harness error occurred."
    " INCOMPLETE otherwise: one of them was not judged (listed with its remedy), the run"
    " was interrupted, or nothing was judged."
)


@dataclass
class Missing:
    """A requirement that counts and was not judged, with how to judge it."""

    id: str
    level: str
    reason: str
    remedy: str

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "level": self.level, "reason": self.reason, "remedy": self.remedy}


@dataclass
class Certification:
    verdict: str
    #: Requirement IDs that block certification, each with why.
    blockers: list[str] = field(default_factory=list)
    #: Requirements that count and were not judged (INCOMPLETE).
    not_judged: list[Missing] = field(default_factory=list)
    #: MUST requirements the target showed do not apply: (id, reason).
    not_applicable: list[tuple[str, str]] = field(default_factory=list)
    interrupted: bool = False

    @property
    def certified(self) -> bool:
        return self.verdict == CERTIFIED

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "certified": self.certified,
            "rule": RULE,
            "blockers": self.blockers,
            "not_judged": [m.to_json() for m in self.not_judged],
            "not_applicable": [{"id": i, "reason": r} for i, r in self.not_applicable],
            "interrupted": self.interrupted,
        }

    @property
    def headline(self) -> str:
        return self.verdict


def certify(
    requirements: list[dict[str, Any]],
    strict: bool,
    *,
    interrupted: bool = False,
    harness_errors: list[str] | None = None,
) -> Certification:
    """Apply :data:`RULE` to the ``requirements`` entries (in scope) of a report.

    ``harness_errors`` are errors no requirement carries (a crashed xdist worker's
    test, a collection error): each blocks, since what it would have judged is unknown.
    """
    counted = {"MUST", "SHOULD"} if strict else {"MUST"}
    blockers: list[str] = [f"harness error: {e}" for e in harness_errors or []]
    missing: list[Missing] = []
    not_applicable: list[tuple[str, str]] = []
    for req in requirements:
        verdict, level, rid = req["verdict"], req["level"], req["id"]
        status = (req.get("baseline") or {}).get("status")
        if status == "stale":
            blockers.append(f"{rid}: stale baseline entry")
        elif verdict == "error":
            blockers.append(f"{rid}: harness error, not judged")
        elif verdict == "fail" and level in counted:
            excused = " (expected failure)" if status == "expected" else ""
            blockers.append(f"{rid}: failed{excused}")
        elif verdict == "warn" and strict and level == "SHOULD":
            blockers.append(f"{rid}: SHOULD finding under --conformance-strict")
        elif verdict == "not judged" and level in counted:
            missing.append(Missing(rid, level, req.get("reason", ""), req.get("remedy", "")))
        elif verdict == "not applicable" and level == "MUST":
            not_applicable.append((rid, req.get("reason", "")))
    judged_any = any(r["verdict"] in ("pass", "warn", "fail") for r in requirements)
    if blockers:
        verdict = NOT_CERTIFIED
    elif missing or interrupted or not judged_any:
        verdict = INCOMPLETE
    else:
        verdict = CERTIFIED
    return Certification(verdict, blockers, missing, not_applicable, interrupted)


def summary_line(cert: Certification, limit: int = 3) -> str:
    """The console's last line: the verdict, then what blocks it or what is missing and how
    to judge it (the first ``limit`` items; the summary above lists them all)."""
    if cert.verdict == CERTIFIED:
        extra = f" ({len(cert.not_applicable)} MUST not applicable)" if cert.not_applicable else ""
        return f"{CERTIFIED}: every counted requirement was judged and held{extra}"
    if cert.verdict == NOT_CERTIFIED:
        shown = "; ".join(cert.blockers[:limit])
        more = f"; and {len(cert.blockers) - limit} more" if len(cert.blockers) > limit else ""
        return f"{NOT_CERTIFIED}: {shown}{more}"
    if cert.interrupted:
        return (
            f"{INCOMPLETE}: the run was interrupted, {len(cert.not_judged)} requirements not"
            " judged: run the suite again to its end"
        )
    if not cert.not_judged:
        return f"{INCOMPLETE}: nothing was judged"
    groups = group_missing(cert.not_judged)
    shown = "; ".join(
        f"{_names(members)} (to judge: {remedy})"
        for remedy, members in list(groups.items())[:limit]
    )
    more = f"; and {len(groups) - limit} more" if len(groups) > limit else ""
    return f"{INCOMPLETE}: {len(cert.not_judged)} not judged: {shown}{more}"


def _names(members: list[Missing], most: int = 6) -> str:
    names = ", ".join(m.id for m in members[:most])
    return names + (f" and {len(members) - most} more" if len(members) > most else "")


def group_missing(missing: list[Missing]) -> dict[str, list[Missing]]:
    """Not-judged requirements grouped by their remedy, in first-seen order."""
    groups: dict[str, list[Missing]] = {}
    for item in missing:
        groups.setdefault(item.remedy, []).append(item)
    return groups
