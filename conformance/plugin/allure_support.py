"""Allure results with requirement labels, evidence attachments and stable history IDs.

Labels go on as the ``allure_label``/``allure_link`` marks allure-pytest
reads at teardown: epic = role, feature = rule area, story = requirement
ID, severity from the strongest level the test checks, and a link to each
requirement's spec section. allure-pytest derives ``historyId`` from the
test's module path; the controller rewrites it at the end of the run from
the requirement IDs, the test's name and its parameters, so nightly trends
survive a test moving between modules.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from conformance.catalogue import CATALOGUE, Level

PLUGIN = "allure_pytest"
SEVERITY = {
    Level.MUST: "critical",
    Level.SHOULD: "normal",
    Level.MAY: "minor",
    Level.INFO: "trivial",
}
_LEVEL_ORDER = (Level.MUST, Level.SHOULD, Level.MAY, Level.INFO)


def enabled(config: pytest.Config) -> bool:
    """allure-pytest is loaded and writing results (``--alluredir`` or our default)."""
    return config.pluginmanager.has_plugin(PLUGIN) and bool(
        getattr(config.option, "allure_report_dir", None)
    )


def mark_item(item: pytest.Item, ids: list[str]) -> None:
    """Attach the Allure labels and links of the requirements ``item`` checks."""
    reqs = [CATALOGUE[i] for i in ids]
    strongest = min(reqs, key=lambda r: _LEVEL_ORDER.index(r.level)).level
    item.add_marker(pytest.mark.allure_label(SEVERITY[strongest], label_type="severity"))
    for value, kind in (
        *((r.role.value, "epic") for r in reqs),
        *((r.area, "feature") for r in reqs),
        *((r.id, "story") for r in reqs),
    ):
        item.add_marker(pytest.mark.allure_label(value, label_type=kind))
    for req in reqs:
        item.add_marker(pytest.mark.allure_link(req.source, link_type="link", name=req.id))


def attach(name: str, text: str) -> None:
    """Add ``text`` to the running test's Allure result (no-op without Allure)."""
    import allure

    allure.attach(text, name=name, attachment_type=allure.attachment_type.TEXT)


def history_id(result: dict[str, Any]) -> str | None:
    """The stable history ID of one Allure result, or None when it checks no requirement."""
    stories = sorted(
        str(label["value"])
        for label in result.get("labels", [])
        if label.get("name") == "story" and label.get("value") in CATALOGUE
    )
    if not stories:
        return None
    test = str(result.get("fullName", "")).rsplit("#", 1)[-1].rsplit(".", 1)[-1]
    params = sorted(
        f"{p.get('name')}={p.get('value')}"
        for p in result.get("parameters", [])
        if not p.get("excluded")
    )
    key = "\n".join(["fleet-conformance", *stories, test, *params])
    return hashlib.md5(key.encode(), usedforsecurity=False).hexdigest()


def stabilise_history(directory: Path) -> int:
    """Rewrite ``historyId`` in every result file under ``directory``; returns how many."""
    changed = 0
    for path in sorted(directory.glob("*-result.json")):
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        wanted = history_id(result)
        if wanted is None or result.get("historyId") == wanted:
            continue
        result["historyId"] = wanted
        path.write_text(json.dumps(result))
        changed += 1
    return changed
