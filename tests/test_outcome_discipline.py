"""Suite code ends a test without judging only through ``conformance.outcomes``.

A bare ``pytest.skip`` says neither whether the target lacks the feature
(not applicable, with evidence) nor how to judge the rule (not judged, with
a remedy); the plugin reads it as not judged with no usable remedy. So the
suite must not use it, nor ``pytest.xfail`` or ``pytest.importorskip``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conformance.outcomes import NotApplicable, NotJudged, not_applicable, not_judged

PACKAGE = Path(__file__).resolve().parent.parent / "conformance"
BARE = {"skip", "xfail", "importorskip"}


def bare_skips(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in BARE
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "pytest"
        ):
            found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    return found


def test_no_suite_code_skips_without_saying_why_in_outcome_terms() -> None:
    found = [hit for path in sorted(PACKAGE.rglob("*.py")) for hit in bare_skips(path)]
    assert found == [], "use conformance.outcomes instead of: " + ", ".join(found)


def test_outcomes_insist_on_evidence_and_remedy() -> None:
    with pytest.raises(ValueError):
        not_applicable("no WebSocket", " ")
    with pytest.raises(ValueError):
        not_judged("no token", "")
    with pytest.raises(NotApplicable) as na:
        not_applicable("no WebSocket", "upgrade answered 404")
    assert na.value.evidence == "upgrade answered 404"
    with pytest.raises(NotJudged) as nj:
        not_judged("no token", "--enrollment-token=T")
    assert nj.value.remedy == "--enrollment-token=T"
    assert "to judge it: --enrollment-token=T" in str(nj.value)
