"""``conformance.html``: the report a person reads, rendered from ``conformance.json``.

One self-contained file: inline CSS, no scripts, no fetches (a
Content-Security-Policy forbids them), collapsible evidence with
``<details>``. Findings are open by default so the first screen a reader
sees holds the certification line, the counts and the first failure.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from conformance.scope import judged_over

VERDICT_ORDER = ("fail", "error", "warn", "not judged", "pass", "not applicable")
LEVELS = ("MUST", "SHOULD", "MAY", "INFO")
#: Requirements with these verdicts are listed first and shown open.
OPEN_VERDICTS = ("fail", "error", "warn", "not judged")

_CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:72rem;padding:1rem 1.5rem;
color:#1b1f24;background:#fff}
h1{font-size:1.5rem;margin:.2rem 0}
.meta{color:#555;margin:.2rem 0 1rem}.meta span{margin-right:1.2rem}
.banner{padding:.8rem 1rem;border-radius:.4rem;font-size:1.25rem;font-weight:700;margin:.6rem 0}
.banner.ok{background:#dff5e3;border:2px solid #2c8a3e}
.banner.no{background:#fde4e4;border:2px solid #b3261e}
.banner.inc{background:#fff4d6;border:2px solid #b26a00}
.scope{font-size:.9rem;margin:.4rem 0}.remedy{font-size:.88rem;margin:.2rem 0}
.rule{font-size:.85rem;font-weight:400;margin-top:.3rem}
.blockers{font-size:.9rem;font-weight:400;margin:.3rem 0 0 1.2rem;padding:0}
table.counts{border-collapse:collapse;margin:.6rem 0 1.2rem}
table.counts th,table.counts td{border:1px solid #ccd;padding:.25rem .6rem;text-align:right}
table.counts th:first-child{text-align:left}
details{border:1px solid #d6d9de;border-radius:.35rem;margin:.35rem 0;padding:.2rem .6rem}
details[open]{background:#fafbfc}
summary{cursor:pointer;padding:.2rem 0}
.v{display:inline-block;min-width:4.6rem;text-align:center;border-radius:.25rem;
font-weight:700;font-size:.8rem;padding:.05rem .3rem;margin-right:.5rem;color:#fff}
.v-fail{background:#b3261e}.v-error{background:#7a3e9d}.v-warn{background:#b26a00}
.v-pass{background:#2c8a3e}.v-not-applicable{background:#6b7280}
.v-not-judged{background:#8a6d00}
.id{font-family:ui-monospace,monospace;font-weight:600}
.lvl{color:#555;font-size:.85rem;margin:0 .4rem}
.base{font-size:.8rem;color:#7a4b00;margin-left:.4rem}
pre{white-space:pre-wrap;word-break:break-word;background:#f3f4f6;padding:.5rem;
border-radius:.3rem;font-size:.82rem;max-height:40rem;overflow:auto}
ul.checks{margin:.2rem 0;padding-left:1.2rem;font-size:.88rem}
"""


def _badge(verdict: str) -> str:
    css = verdict.replace(" ", "-")
    return f'<span class="v v-{css}">{escape(verdict.upper())}</span>'


def _counts_table(requirements: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{escape(v)}</th>" for v in VERDICT_ORDER)
    rows = []
    for level in LEVELS:
        of_level = [r for r in requirements if r["level"] == level]
        if not of_level:
            continue
        cells = "".join(
            f"<td>{sum(1 for r in of_level if r['verdict'] == v) or ''}</td>" for v in VERDICT_ORDER
        )
        rows.append(f"<tr><th>{level}</th>{cells}</tr>")
    cells = "".join(
        f"<td>{sum(1 for r in requirements if r['verdict'] == v)}</td>" for v in VERDICT_ORDER
    )
    rows.append(f"<tr><th>all</th>{cells}</tr>")
    return f'<table class="counts" id="counts"><tr><th>level</th>{head}</tr>{"".join(rows)}</table>'


_BANNER_CSS = {"CERTIFIED": "ok", "NOT CERTIFIED": "no", "INCOMPLETE": "inc"}


def _banner(report: dict[str, Any]) -> str:
    cert = report["certification"]
    headline = cert["verdict"]
    blockers = "".join(
        f'<li><a href="#{escape(b.split(":")[0])}">{escape(b)}</a></li>' for b in cert["blockers"]
    )
    groups: dict[tuple[str, str], list[str]] = {}
    for m in cert["not_judged"]:
        groups.setdefault((m["reason"], m["remedy"]), []).append(m["id"])
    missing = "".join(
        "<li>"
        + ", ".join(f'<a href="#{escape(i)}">{escape(i)}</a>' for i in ids)
        + f": not judged: {escape(reason)}<br>to judge {'it' if len(ids) == 1 else 'them'}:"
        f" {escape(remedy)}</li>"
        for (reason, remedy), ids in groups.items()
    )
    if cert["interrupted"]:
        missing = "<li>the run was interrupted (SIGINT or SIGTERM)</li>" + missing
    if cert["blockers"] and cert["not_judged"]:
        # What blocks comes first; the requirements not judged are in their entries below.
        count = len(cert["not_judged"])
        missing = f"<li>also {count} requirement{'s' * (count != 1)} not judged (see below)</li>"
    applicable = ""
    if cert["not_applicable"]:
        names = ", ".join(n["id"] for n in cert["not_applicable"])
        applicable = (
            '<div class="rule">MUST requirements the target showed do not apply'
            f" (evidence with each): {escape(names)}</div>"
        )
    lists = "".join(f"<ul class=blockers>{items}</ul>" for items in (blockers, missing) if items)
    return (
        f'<div class="banner {_BANNER_CSS[headline]}" id="certification">{escape(headline)}'
        f'<details class="rule"><summary>the rule</summary>{escape(cert["rule"])}</details>'
        f"{lists}{applicable}</div>"
    )


def _scope(report: dict[str, Any]) -> str:
    scope = report["scope"]
    tested = ", ".join(scope["roles_tested"]) or "nothing"
    not_tested = ", ".join(scope["roles_not_tested"])
    windows = ", ".join(f"{k} {v:g} s" for k, v in scope["windows"].items())
    options = ", ".join(f"{k}: {v}" for k, v in scope["options"].items())
    transports = judged_over(scope) or "none"
    lines = [
        f"<b>Under test:</b> {escape(tested)}"
        + (
            f" · <b>not under test</b> ({scope['out_of_scope_requirements']} requirements"
            f" out of scope): {escape(not_tested)}"
            if not_tested
            else ""
        ),
        f"<b>Transports judged:</b> {escape(transports)}"
        f" (--transport {escape(scope['transport'])})",
        f"<b>Windows:</b> {escape(windows)}",
        f"<b>Options:</b> {escape(options)}",
    ]
    if scope["selection"]:
        lines.append(f"<b>Selection:</b> {escape(' '.join(scope['selection']))}")
    return '<div class="scope" id="scope">' + "<br>".join(lines) + "</div>"


def _requirement(req: dict[str, Any]) -> str:
    verdict = req["verdict"]
    base = req.get("baseline")
    base_note = ""
    if base:
        status, reason = escape(base["status"]), escape(base["reason"])
        base_note = f'<span class="base">baseline: {status} ({reason})</span>'
    opened = " open" if verdict in OPEN_VERDICTS or (base and base["status"] == "stale") else ""
    parts = [
        f'<details id="{escape(req["id"])}" class="req"{opened}><summary>{_badge(verdict)}'
        f'<span class="id">{escape(req["id"])}</span><span class="lvl">{escape(req["level"])}'
        f" · {escape(req['part'])}</span>{escape(req['title'])}{base_note}</summary>",
        f'<div>Source: <a href="{escape(req["source"])}">{escape(req["source"])}</a></div>',
    ]
    checks = req.get("checks") or []
    if checks:
        items = "".join(
            f"<li>{escape(c['verdict'])}: <code>{escape(c['test'])}</code>"
            f"{(' — ' + escape(c['message'].splitlines()[0])) if c['message'] else ''}</li>"
            for c in checks
        )
        parts.append(f'<ul class="checks">{items}</ul>')
    if req.get("remedy"):
        parts.append(f'<div class="remedy">To judge it: {escape(req["remedy"])}</div>')
    for finding in req["evidence"]:
        if finding["verdict"] not in (*OPEN_VERDICTS, "not applicable") or not (
            finding["evidence"] or finding["verdict"] in OPEN_VERDICTS
        ):
            continue
        text = finding["message"]
        if finding["evidence"]:
            text += "\n\n" + finding["evidence"]
        parts.append(f'<pre class="evidence">{escape(text)}</pre>')
    parts.append("</details>")
    return "".join(parts)


def render(report: dict[str, Any]) -> str:
    """The whole HTML document for one report."""
    requirements: list[dict[str, Any]] = report["requirements"]
    ordered = sorted(requirements, key=lambda r: VERDICT_ORDER.index(r["verdict"]))
    targets = ", ".join(report["targets"])
    seed = report["hypothesis_seed"] or "random"
    meta = (
        f"<span>target: {escape(targets)}</span><span>profile: {escape(report['profile'])}</span>"
        f"<span>strict: {'yes' if report['strict'] else 'no'}</span>"
        f"<span>seed: {escape(seed)}</span><span>exit status: {report['exit_status']}</span>"
        f"<br><span>{escape(report['suite'])} {escape(report['suite_version'])}</span>"
        f"<span>spec: {escape(report['spec_version'])}</span>"
        f"<span>{escape(report['started'])} → {escape(report['finished'])}</span>"
    )
    body = "".join(_requirement(r) for r in ordered)
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta http-equiv="Content-Security-Policy"'
        " content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>fleet-conformance: {escape(targets)}</title><style>{_CSS}</style></head>"
        f'<body><h1>fleet-conformance report</h1><div class="meta">{meta}</div>'
        f'{_banner(report)}<section id="summary">{_counts_table(requirements)}</section>'
        f"{_scope(report)}"
        f'<section id="requirements">{body}</section></body></html>\n'
    )


def write_html(report: dict[str, Any], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "conformance.html"
    path.write_text(render(report), encoding="utf-8")
    return path
