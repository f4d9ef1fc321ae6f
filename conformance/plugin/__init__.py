"""The pytest plugin (entry point ``pytest11``): options, fixtures, verdicts, reports.

It stays inert unless tests carrying the ``requirement`` marker run: the
project's own tests load it too and must not start targets or write reports.
"""

from __future__ import annotations

import datetime as _dt
import json
import random
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from conformance import profiles
from conformance.agent import pacing
from conformance.agent.scenario import AgentSetup
from conformance.catalogue import CATALOGUE
from conformance.certification import INCOMPLETE, NOT_CERTIFIED, Certification
from conformance.plugin import allure_support, interrupts
from conformance.plugin.fixtures import (
    agent_setup,
    conformance_options,
    conformance_session,
    observe,
    opamp,
    opamp_agent_setup,
    scenario_features,
    target,
    transport,
)
from conformance.plugin.options import (
    EXIT_INCOMPLETE,
    add_options,
    check_path_option_form,
    deselected_by_options,
    read_options,
    requirement_patterns,
    rerun_ids,
    selected,
    selection_words,
    strict_mode,
)
from conformance.plugin.results import (
    COVERAGE_KEY,
    NOTE_KEY,
    RECORD_KEY,
    TRANSPORT_KEY,
    Results,
    decode,
    encode,
    findings_for,
    requirement_ids,
)
from conformance.plugin.summary import write_summary, write_verdict_line
from conformance.plugin.targets import Unreachable, check_reachable
from conformance.report_html import write_html
from conformance.report_json import build_report, certification_of, write_report
from conformance.report_junit import write_junit
from conformance.scope import Part, Scope
from conformance.target import redact, redact_header
from conformance.verdicts import Verdict, violations_of

__all__ = [
    "agent_setup",
    "conformance_options",
    "conformance_session",
    "observe",
    "opamp",
    "opamp_agent_setup",
    "scenario_features",
    "target",
    "transport",
]

RESULTS = pytest.StashKey[Results]()
STARTED = pytest.StashKey[str]()
REPORT_PATH = pytest.StashKey[str]()
CERTIFICATION = pytest.StashKey[Certification]()
SCOPE = pytest.StashKey[Scope]()
EMBEDDED_NAME = "embedded reference server (fixtures.reference.server)"


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "requirement(*ids): the catalogue requirement IDs this test checks (fleet-conformance)",
    )
    check_path_option_form(list(config.invocation_params.args))
    options = read_options(config)
    profiles.activate(options.profile)
    if not _is_worker(config) and rerun_ids(config) == set():
        path = config.getoption("rerun_failed")
        pytest.exit(f"fleet-conformance: nothing to re-run: no requirement failed in {path}", 0)
    config.stash[RESULTS] = Results()
    config.stash[STARTED] = _now()
    config.pluginmanager.register(_Recorder(config), "fleet-conformance-recorder")
    if not _runs_suite(config):
        return
    interrupts.install(forward_to_children=_uses_xdist_workers(config))
    _fix_seed(config)
    if getattr(config.option, "allure_report_dir", "missing") is None:
        # Our own default directory holds this run only (as conformance.json does);
        # only the controller empties it, or a late worker would wipe an early one's results.
        config.option.allure_report_dir = str(options.report_dir / "allure-results")
        config.option.clean_alluredir = not _is_worker(config)
    if config.pluginmanager.has_plugin("xdist") and not _is_worker(config):
        config.pluginmanager.register(_SeedToWorkers(), "fleet-conformance-seed")
        if getattr(config.option, "maxschedchunk", 0) is None:
            # xdist hands out runs of consecutive tests; the suite's tests wait on
            # clocks, not on shared fixtures, so one at a time spreads the slow ones.
            config.option.maxschedchunk = 1


def _uses_xdist_workers(config: pytest.Config) -> bool:
    """Whether this process is an xdist controller with workers of its own."""
    if _is_worker(config) or not config.pluginmanager.has_plugin("xdist"):
        return False
    return bool(getattr(config.option, "numprocesses", None))


SEED_INPUT = "fleet_conformance_seed"


def _fix_seed(config: pytest.Config) -> None:
    """Every run has a Hypothesis seed, reported and shared with xdist workers.

    Without ``--hypothesis-seed`` the controller draws one, so the report
    always names the seed that reproduces the run.
    """
    if config.getoption("hypothesis_seed", None) is not None:
        return
    if _is_worker(config):
        seed = config.workerinput.get(SEED_INPUT)  # type: ignore[attr-defined]
    else:
        seed = str(random.randrange(2**32))
    if seed is not None:
        config.option.hypothesis_seed = seed


class _SeedToWorkers:
    """Hands the controller's seed to each xdist worker (registered only with xdist)."""

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[SEED_INPUT] = node.config.getoption("hypothesis_seed")


def _runs_suite(config: pytest.Config) -> bool:
    """Whether this invocation collects the conformance suite (not only the project's tests)."""
    import conformance.suite as suite_pkg

    suite_dir = str(next(iter(suite_pkg.__path__)))
    for arg in config.args:
        path = arg.split("::")[0]
        if path.startswith("conformance.suite"):
            return True
        resolved = str((config.invocation_params.dir / path).resolve())
        if resolved.startswith(suite_dir) or suite_dir.startswith(resolved + "/"):
            return True
    return False


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    if _is_worker(config) or not config.getoption("target"):
        return
    options = read_options(config)
    try:
        check_reachable(options, config.getoption("request_timeout"))
    except Unreachable as exc:
        # A usage error (exit 4): pytest prints it once, where pytest.exit printed it twice.
        raise pytest.UsageError(f"fleet-conformance: {exc}") from None


def pytest_report_header(config: pytest.Config) -> list[str]:
    options = read_options(config)
    targets = [t.display for t in options.targets] or [EMBEDDED_NAME]
    lines = [
        f"fleet-conformance: targets={', '.join(targets)} transport={options.transport}"
        f" profile={options.profile.name} strict={options.strict}"
    ]
    if options.headers:
        lines.append("  target headers: " + ", ".join(redact_header(*h) for h in options.headers))
    if options.enrollment_token:
        lines.append(f"  enrollment token: {redact(options.enrollment_token)}")
    return lines


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "transport" in metafunc.fixturenames:
        chosen = metafunc.config.getoption("transport")
        names = ["http", "ws"] if chosen == "auto" else [chosen]
        metafunc.parametrize("transport", names, indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for rid in requirement_ids(item):
            if rid not in CATALOGUE:
                raise pytest.UsageError(f"{item.nodeid} names unknown requirement {rid!r}")
    if allure_support.enabled(config):
        for item in items:
            if ids := requirement_ids(item):
                allure_support.mark_item(item, ids)
    chosen, left_out = requirement_patterns(config)
    rerun = rerun_ids(config)
    if not chosen and not left_out and rerun is None:
        return
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        ids = requirement_ids(item)
        wanted = not ids or (
            selected(ids, chosen, left_out) and (rerun is None or bool(rerun & set(ids)))
        )
        (kept if wanted else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    requirements = requirement_ids(item)
    if not requirements:
        return report
    if report.when != "call" and report.outcome == "passed":
        return report
    exc = call.excinfo.value if call.excinfo is not None else None
    skip_reason = ""
    if report.skipped and isinstance(report.longrepr, tuple):
        skip_reason = str(report.longrepr[2])
    strict = strict_mode(item.config)
    notes = [str(v) for k, v in item.user_properties if k == NOTE_KEY]
    findings = findings_for(
        requirements, report.when, report.outcome, exc, skip_reason, strict, notes
    )
    verdicts = {f.verdict for f in findings}
    if report.failed and Verdict.WARN in verdicts and not verdicts & {Verdict.FAIL, Verdict.ERROR}:
        # A SHOULD finding outside --strict: the test passes, the warning is kept.
        report.outcome = "passed"
        report.longrepr = None
    elif report.failed and violations_of(exc) and item.config.get_verbosity() < 1:
        # A finding, not a crash: show the requirement and its evidence, not a traceback.
        assert exc is not None
        notes = getattr(exc, "__notes__", [])
        report.longrepr = "\n".join([str(exc), *notes, _reproduce_hint(item)])
    report.user_properties.append((RECORD_KEY, encode(findings)))
    agent = getattr(item, "funcargs", {}).get("opamp_agent_setup")
    if isinstance(agent, AgentSetup) and (seen := pacing.clock_of(agent).transport):
        # The transport the agent under test spoke: the certificate covers only that one.
        report.user_properties.append((TRANSPORT_KEY, f"{Part.OPAMP_AGENT.value}/{seen}"))
    if allure_support.enabled(item.config):
        for finding in findings:
            if finding.evidence or finding.verdict in (Verdict.FAIL, Verdict.WARN, Verdict.ERROR):
                text = "\n\n".join(t for t in (finding.message, finding.evidence) if t)
                allure_support.attach(f"{finding.requirement} {finding.verdict.value}", text)
    return report


def _reproduce_hint(item: pytest.Item) -> str:
    """How to run this one test again against the same target."""
    config = item.config
    words = [f"pytest '{item.nodeid}'"]
    words += [f"--target={t}" for t in config.getoption("target")]
    if config.getoption("target_header"):
        words.append("--target-header '...'")
    if config.getoption("enrollment_token"):
        words.append("--enrollment-token '...'")
    seed = _seed(config)
    if seed is not None:
        words.append(f"--hypothesis-seed={seed}")
        return "reproduce: " + " ".join(words)
    return (
        "reproduce: " + " ".join(words) + " (with the @reproduce_failure line above for the"
        " exact example, or --hypothesis-seed=N to fix the whole search)"
    )


class _Recorder:
    """Collects verdict records from every test report (also those xdist workers send)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.results = config.stash[RESULTS]
        self.collection_errors: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        transports = [str(v) for k, v in report.user_properties if k == TRANSPORT_KEY]
        records = [str(v) for k, v in report.user_properties if k == RECORD_KEY]
        for record in records:
            self.results.add(report.nodeid, decode(record), transports)
        coverage = report.user_properties if report.when == "call" else []
        for text in (str(v) for k, v in coverage if k == COVERAGE_KEY):
            self.results.coverage.append(json.loads(text) | {"test": report.nodeid})
        if report.failed and not records:
            # No verdict record: the test never reached our makereport hook (an xdist
            # worker crashed under it). Whatever it would have judged is unknown.
            self.results.orphans.append(
                f"{report.nodeid} ended in {report.when} without a verdict (a crashed worker?)"
            )

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collection_errors.append(report.nodeid or "the test session")
            self.results.orphans.append(f"collection error in {report.nodeid}")

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if _is_worker(self.config) or not self._reports(session):
            return
        options = read_options(self.config)
        # pytest also ends a run with collection errors as INTERRUPTED: that is a
        # harness error (an orphan), not a user's interruption.
        interrupted = interrupts.received() or (
            session.exitstatus == pytest.ExitCode.INTERRUPTED and not self.collection_errors
        )
        scope = options.scope(selection_words(self.config), interrupted)
        self.config.stash[SCOPE] = scope
        self.results.finalize(scope, deselected_by_options(self.config))
        self.results.apply_baseline(
            options.expected_failures, [t.given for t in options.targets] or [EMBEDDED_NAME]
        )
        certification = certification_of(self.results, options.strict, interrupted)
        self.config.stash[CERTIFICATION] = certification
        if interrupted:
            session.exitstatus = pytest.ExitCode.INTERRUPTED
        elif session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            session.exitstatus = self.results.exit_status()
            if options.certify and session.exitstatus == 0:
                # A certification run succeeds only with CERTIFIED: a failure a baseline
                # excuses is still NOT CERTIFIED (1), and INCOMPLETE has its own code.
                if certification.verdict == NOT_CERTIFIED:
                    session.exitstatus = 1
                elif certification.verdict == INCOMPLETE:
                    session.exitstatus = EXIT_INCOMPLETE
        report = build_report(
            self.results,
            scope=scope,
            targets=[t.display for t in options.targets] or [EMBEDDED_NAME],
            strict=options.strict,
            seed=_seed(self.config),
            started=self.config.stash[STARTED],
            finished=_now(),
            exit_status=int(session.exitstatus),
        )
        self.config.stash[REPORT_PATH] = str(write_report(report, options.report_dir))
        write_html(report, options.report_dir)
        areas = {rid: req.area for rid, req in CATALOGUE.items()}
        write_junit(report, areas, options.report_dir)
        allure_dir = getattr(self.config.option, "allure_report_dir", None)
        if allure_dir and allure_support.enabled(self.config):
            allure_support.stabilise_history(Path(allure_dir))

    def _reports(self, session: pytest.Session) -> bool:
        """Whether this run writes reports: the suite ran (or was cut short), not a listing."""
        if self.results.seen_any:
            return True
        return _runs_suite(self.config) and not self.config.option.collectonly

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if _is_worker(self.config) or CERTIFICATION not in self.config.stash:
            return
        write_summary(
            terminalreporter,
            self.results,
            self.config.stash[CERTIFICATION],
            self.config.stash[SCOPE],
            self.config.stash.get(REPORT_PATH, ""),
        )

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """The verdict is the console's last line, after pytest's own counts."""
        if _is_worker(config) or CERTIFICATION not in config.stash:
            return
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            write_verdict_line(
                reporter, config.stash[CERTIFICATION], self.results.transports_judged
            )


def _seed(config: pytest.Config) -> str | None:
    seed = config.getoption("hypothesis_seed", None)
    return None if seed is None else str(seed)
