"""``junit.xml``: one test case per requirement check, for CI systems.

A check is one test's finding on one requirement, so a test that judges
three requirements gives three cases, each named ``ID [test]``. Mapping:
fail is a failure (a skip when a baseline expects it), error an error,
not applicable and not judged are skipped
(with the verdict in the message), warn passes with the finding in
``system-out``; a stale baseline entry adds one failing case.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from conformance.scope import judged_over

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(value: str) -> str:
    """Characters XML 1.0 cannot hold, replaced (evidence may quote raw bytes)."""
    return _NOT_XML.sub("\ufffd", value)


def _short(nodeid: str) -> str:
    return nodeid.rsplit("/", 1)[-1]


def _case(suite: ET.Element, req: dict[str, Any], test: str) -> ET.Element:
    classname = f"fleet-conformance.{req['role']}.{req['area']}".replace(" ", "_")
    return ET.SubElement(suite, "testcase", name=f"{req['id']} [{test}]", classname=classname)


def _evidence(req: dict[str, Any], test: str, verdict: str) -> str:
    for finding in req["evidence"]:
        if finding.get("test") == test and finding["verdict"] == verdict:
            return str(finding["evidence"])
    return ""


def _fill(case: ET.Element, req: dict[str, Any], check: dict[str, Any]) -> str:
    """Mark ``case`` with the check's outcome; returns the JUnit outcome name."""
    verdict, message = check["verdict"], _text(check["message"])
    expected = (req.get("baseline") or {}).get("status") == "expected"
    headline = f"{req['id']} ({req['level']}): {message.splitlines()[0] if message else verdict}"
    if verdict == "fail" and expected:
        reason = _text(req["baseline"]["reason"])
        ET.SubElement(case, "skipped", message=f"expected failure (baseline): {reason}")
        return "skipped"
    if verdict == "fail":
        node = ET.SubElement(case, "failure", message=headline, type=req["level"])
        node.text = _text(message + "\n\n" + _evidence(req, check["test"], verdict))
        return "failure"
    if verdict == "error":
        ET.SubElement(case, "error", message=headline).text = message
        return "error"
    if verdict in ("not applicable", "not judged"):
        ET.SubElement(case, "skipped", message=f"{verdict}: {message}" if message else verdict)
        return "skipped"
    if message:
        label = "WARN " if verdict == "warn" else ""
        ET.SubElement(case, "system-out").text = label + message
    return "passed"


def render(report: dict[str, Any], areas: dict[str, str]) -> bytes:
    """The JUnit document; ``areas`` maps requirement IDs to their rule area."""
    suite = ET.Element("testsuite", name="fleet-conformance", timestamp=report["started"])
    _properties(suite, report)
    tally = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for req in report["requirements"]:
        req = req | {"area": areas.get(req["id"], "other")}
        checks = req["checks"] or [
            {"test": "not run", "verdict": "not judged", "message": req.get("reason", "")}
        ]
        outcomes = [_fill(_case(suite, req, _short(c["test"])), req, c) for c in checks]
        if (req.get("baseline") or {}).get("status") == "stale":
            case = _case(suite, req, "baseline")
            reason = _text(req["baseline"]["reason"])
            ET.SubElement(
                case, "failure", message=f"{req['id']}: stale --expected-failures entry"
            ).text = f"listed ({reason}) but passed: remove the entry"
            outcomes.append("failure")
        tally["tests"] += len(outcomes)
        for name, key in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
            tally[key] += outcomes.count(name)
    for key, value in tally.items():
        suite.set(key, str(value))
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document


def _properties(suite: ET.Element, report: dict[str, Any]) -> None:
    """The certification verdict and the run's scope, as JUnit suite properties."""
    props = ET.SubElement(suite, "properties")
    cert = report.get("certification") or {}
    scope = report.get("scope") or {}
    values: dict[str, str] = {"certification": str(cert.get("verdict", ""))}
    if scope:
        values |= {
            "roles_tested": ", ".join(scope["roles_tested"]),
            "roles_not_tested": ", ".join(scope["roles_not_tested"]),
            "transports_judged": judged_over(scope),
            "profile": scope["profile"],
            "interrupted": str(scope["interrupted"]).lower(),
        }
        values |= {f"window.{k}": f"{v:g}" for k, v in scope["windows"].items()}
        values |= {f"option.{k}": v for k, v in scope["options"].items()}
    for name, value in values.items():
        ET.SubElement(props, "property", name=name, value=_text(value))


def write_junit(report: dict[str, Any], areas: dict[str, str], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "junit.xml"
    path.write_bytes(render(report, areas))
    return path
