"""Command-line options of the pytest plugin, and their parsed, validated form."""

from __future__ import annotations

import dataclasses
import fnmatch
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from conformance.agent import reference as reference_agent
from conformance.agent.launch import AgentCommand, LaunchError
from conformance.agent.scenario import AgentSetup
from conformance.baseline import BaselineError, Entry
from conformance.baseline import load as load_baseline
from conformance.catalogue import CATALOGUE
from conformance.model.agent_timing import Timing
from conformance.profiles import DEFAULT_PROFILE, PROFILES, Profile
from conformance.scope import Part, Scope
from conformance.target import Target, TargetError, Transport, parse_header, parse_target
from conformance.wire import DEFAULT_MAX_MESSAGE_BYTES

GROUP = "fleet-conformance"
#: Agent timing defaults: Elastic Agent's constants (fleet/facts: enrolment backoff
#: 5 s initial, 10 min max); the floor is the smallest interval it ever uses.
DEFAULT_FLOOR = 5.0
DEFAULT_CAP = 600.0
DEFAULT_SETTLE = 2.0
#: The OpAMP spec's recommended minimum retry interval (rules section 6).
DEFAULT_OPAMP_FLOOR = 30.0
AGENT_PROTOCOLS = ("fleet", "opamp", "both")
#: Exit code of a --certify run whose verdict is INCOMPLETE (pytest uses 0-5).
EXIT_INCOMPLETE = 6


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup(GROUP, "fleet-conformance: OpAMP / Elastic Fleet conformance")
    group.addoption(
        "--target",
        action="append",
        default=[],
        metavar="URL",
        help="server under test (repeatable: instances of one service). A base URL gets"
        " /v1/opamp; ws:// or wss:// selects WebSocket. Without it the bundled reference"
        " server is started on a free loopback port and tested.",
    )
    group.addoption(
        "--target-header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="header sent with every request to the target, e.g. credentials (repeatable;"
        " the value is redacted in every report and log)",
    )
    group.addoption(
        "--transport",
        choices=["http", "ws", "auto"],
        default="auto",
        help="transport to test: http, ws, or auto (default: the URL's scheme, plus the other"
        " transport when the target is detected to speak it)",
    )
    group.addoption(
        "--profile",
        choices=sorted(PROFILES),
        default=DEFAULT_PROFILE,
        help="run size: Hypothesis examples per property and time windows"
        f" (default: {DEFAULT_PROFILE})",
    )
    group.addoption(
        "--conformance-strict",
        action="store_true",
        default=False,
        help="SHOULD findings fail the run (by default they are warnings). pytest's own"
        " --strict implies it.",
    )
    group.addoption(
        "--certify",
        action="store_true",
        default=False,
        help="a certification run: an INCOMPLETE verdict (a MUST not judged, or an"
        f" interrupted run) exits with code {EXIT_INCOMPLETE} instead of 0",
    )
    group.addoption(
        "--request-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="bound on each request/reply exchange (default: the profile's, 5 s for quick)",
    )
    group.addoption(
        "--max-message-bytes",
        type=int,
        default=None,
        metavar="BYTES",
        help="the target's request size limit, for SRV-413 (default: the spec's 64 MiB, tested"
        " in the nightly profile only; giving the target's real limit tests it in every profile)",
    )
    group.addoption(
        "--enrollment-token",
        default=None,
        metavar="TOKEN",
        help="a Fleet enrollment token (API key) of the target, for the enrolment and check-in"
        " rules (redacted in every report and log; without it those rules are skipped)",
    )
    group.addoption(
        "--disabled-enrollment-token",
        default=None,
        metavar="TOKEN",
        help="a Fleet enrollment token that exists but is disabled (FLEET-SRV-ENROLL-401;"
        " redacted)",
    )
    group.addoption(
        "--requirement",
        action="append",
        default=[],
        metavar="ID",
        help="run only the tests that check these requirements: an ID or a glob such as"
        " 'SRV-FS-*' (repeatable)",
    )
    group.addoption(
        "--exclude-requirement",
        action="append",
        default=[],
        metavar="ID",
        help="leave out the tests that check only these requirements (ID or glob, repeatable)",
    )
    group.addoption(
        "--expected-failures",
        default=None,
        metavar="FILE",
        help="YAML baseline of known failures (id, reason, optional target): listed ones do"
        " not fail the run, unlisted ones do, listed ones that pass fail it as stale",
    )
    group.addoption(
        "--agent-cmd",
        default=None,
        metavar="TEMPLATE",
        help="command that starts an agent under test, one per scenario; placeholders"
        " {fleet_url} {opamp_url} {opamp_ws_url} {enrollment_token} {monitoring_port}"
        " {monitoring_url} {workdir} {python}. Without it (and without --target) the bundled"
        " reference agents",
    )
    group.addoption(
        "--agent-protocol",
        choices=AGENT_PROTOCOLS,
        default="fleet",
        help="what the agent under test speaks: fleet (enrol and check in, the default),"
        " opamp (an OpAMP client: the suite plays the OpAMP server at {opamp_url} and"
        " {opamp_ws_url}) or both",
    )
    group.addoption(
        "--agent-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment variable for the agent under test, placeholders allowed"
        " (repeatable), e.g. FLEET_URL={fleet_url}",
    )
    group.addoption(
        "--backoff-floor",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"shortest retry interval an agent may use (default {DEFAULT_FLOOR:g} s for Fleet:"
        f" Elastic Agent's initial enrolment backoff; {DEFAULT_OPAMP_FLOOR:g} s for OpAMP:"
        " the spec's recommended minimum)",
    )
    group.addoption(
        "--backoff-cap",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"longest retry interval an agent's backoff grows to (default {DEFAULT_CAP:g} s)",
    )
    group.addoption(
        "--liveness-settle",
        type=float,
        default=None,
        metavar="SECONDS",
        help="time an agent gets to update /liveness after a check-in"
        f" (default {DEFAULT_SETTLE:g} s)",
    )
    group.addoption(
        "--agent-window",
        type=float,
        default=None,
        metavar="SECONDS",
        help="longest observation of one agent scenario (default by profile: 30/300/1200 s)",
    )
    group.addoption(
        "--shrink-budget",
        type=float,
        default=None,
        metavar="SECONDS",
        help="time a failing property may spend looking for a smaller counterexample"
        " (default by profile: 5/30/60 s; 0 reports the first one found)",
    )
    group.addoption(
        "--agent-examples",
        type=int,
        default=None,
        metavar="N",
        help="examples per agent property, each launching the agent (default by profile: 2/8/25)",
    )
    group.addoption(
        "--agent-start-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long a launched agent may take to send its first request (default 30 s)",
    )
    group.addoption(
        "--rerun-failed",
        default=None,
        metavar="FILE",
        help="run only the tests of requirements that failed, warned or errored in this"
        " conformance.json (like pytest's --last-failed, per requirement)",
    )
    group.addoption(
        "--report-dir",
        default="reports",
        metavar="DIR",
        help="where conformance.json, JUnit XML and Allure results are written (default: reports/)",
    )


@dataclass(frozen=True)
class Options:
    """The plugin's options, parsed once per session."""

    targets: tuple[Target, ...]
    headers: tuple[tuple[str, str], ...]
    transport: str
    profile: Profile
    strict: bool
    report_dir: Path
    certify: bool = False
    enrollment_token: str | None = None
    disabled_enrollment_token: str | None = None
    expected_failures: tuple[Entry, ...] = ()
    #: The target's request size limit (SRV-413), and whether the user gave it.
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_message_given: bool = False
    #: The Fleet agent under test (``--agent-cmd``, or the reference agent in the embedded run).
    agent: AgentSetup | None = None
    agent_given: bool = False
    #: The OpAMP agent under test (``--agent-cmd`` with ``--agent-protocol`` opamp or both,
    #: or the reference OpAMP agent in the embedded run).
    opamp_agent: AgentSetup | None = None

    @property
    def agent_only(self) -> bool:
        """An agent is under test and no server: the server tests do not apply."""
        return self.agent_given and not self.targets

    @property
    def embedded(self) -> bool:
        """No ``--target`` given: the bundled reference server is the target."""
        return not self.targets

    @property
    def parts(self) -> tuple[Part, ...]:
        """The roles under test: servers unless only an agent is given, and the agents."""
        parts: list[Part] = []
        if not self.agent_only:
            parts += [Part.OPAMP_SERVER, Part.FLEET_SERVER]
        if self.opamp_agent is not None:
            parts.append(Part.OPAMP_AGENT)
        if self.agent is not None:
            parts.append(Part.FLEET_AGENT)
        return tuple(parts)

    def scope(self, selection: list[str], interrupted: bool) -> Scope:
        """The run's scope for the reports: roles, windows and the options that mattered."""
        windows = {"request_timeout": self.profile.request_timeout}
        opts: dict[str, str] = {
            "targets": ", ".join(t.display for t in self.targets) or "embedded reference",
            "max_message_bytes": (
                f"{self.max_message_bytes} (given)"
                if self.max_message_given
                else f"{self.max_message_bytes} (the spec's default)"
            ),
            "target_headers": ", ".join(name for name, _ in self.headers) or "none",
            "enrollment_token": "given" if self.enrollment_token else "not given",
            "disabled_enrollment_token": (
                "given" if self.disabled_enrollment_token else "not given"
            ),
            "strict": str(self.strict).lower(),
            "certify": str(self.certify).lower(),
        }
        for name, setup in (("agent", self.agent), ("opamp_agent", self.opamp_agent)):
            if setup is None:
                continue
            windows[f"{name}_window"] = setup.window
            windows[f"{name}_backoff_floor"] = setup.timing.floor
            windows[f"{name}_backoff_cap"] = setup.timing.cap
            opts[f"{name}_cmd"] = (
                "reference agent (bundled)" if not self.agent_given else "--agent-cmd given"
            )
        if self.expected_failures:
            opts["expected_failures"] = f"{len(self.expected_failures)} entries"
        return Scope(
            parts=self.parts,
            profile=self.profile.name,
            transport=self.transport,
            windows=windows,
            options=opts,
            selection=selection,
            interrupted=interrupted,
        )

    def selected_transports(self, target: Target) -> list[Transport]:
        if self.transport == "auto":
            return list(Transport)
        return [Transport(self.transport)]

    def primary_transport(self, target: Target) -> Transport:
        """The transport the user asked for, or the URL's own."""
        if self.transport == "auto":
            return target.scheme_transport
        return Transport(self.transport)


#: Options whose value is a path. pytest finds its rootdir and ini file before
#: plugins load, so a path given as a separate word is taken for a test path.
PATH_OPTIONS = ("--report-dir", "--expected-failures", "--rerun-failed")


def check_path_option_form(args: list[str] | tuple[str, ...]) -> None:
    """Insist on ``--report-dir=DIR``; ``--report-dir DIR`` would skew pytest's rootdir."""
    for name in PATH_OPTIONS:
        if name in args:
            raise pytest.UsageError(
                f"write {name}=VALUE with '=': pytest reads a separate value as a test path"
                " before plugins load, which changes the rootdir and the tests collected"
            )


def read_options(config: pytest.Config) -> Options:
    """Parse and validate; a bad value is a usage error with a clear message."""
    try:
        targets = tuple(parse_target(t) for t in config.getoption("target"))
        headers = tuple(parse_header(h) for h in config.getoption("target_header"))
    except TargetError as exc:
        raise pytest.UsageError(str(exc)) from None
    profile = PROFILES[config.getoption("profile")]
    timeout = config.getoption("request_timeout")
    if timeout is not None:
        if not 0 < timeout <= 600:
            raise pytest.UsageError("--request-timeout must be between 0 and 600 seconds")
        profile = dataclasses.replace(profile, request_timeout=timeout)
    shrink = config.getoption("shrink_budget")
    if shrink is not None:
        if not 0 <= shrink <= 3600:
            raise pytest.UsageError("--shrink-budget must be between 0 and 3600 seconds")
        profile = dataclasses.replace(profile, shrink_seconds=shrink)
    examples = config.getoption("agent_examples")
    if examples is not None:
        if not 1 <= examples <= 1000:
            raise pytest.UsageError("--agent-examples must be between 1 and 1000")
        profile = dataclasses.replace(profile, agent_examples=examples)
    baseline_path = config.getoption("expected_failures")
    try:
        expected = tuple(load_baseline(Path(baseline_path))) if baseline_path else ()
    except BaselineError as exc:
        raise pytest.UsageError(str(exc)) from None
    size = config.getoption("max_message_bytes")
    if size is not None and not 1024 <= size <= 1 << 31:
        raise pytest.UsageError("--max-message-bytes must be between 1024 and 2147483648")
    agent = _agent_setup(config, profile, embedded=not targets, protocol="fleet")
    opamp_agent = _agent_setup(config, profile, embedded=not targets, protocol="opamp")
    return Options(
        targets=targets,
        headers=headers,
        transport=config.getoption("transport"),
        profile=profile,
        strict=strict_mode(config),
        report_dir=Path(config.getoption("report_dir")),
        certify=bool(config.getoption("certify")),
        enrollment_token=config.getoption("enrollment_token") or None,
        disabled_enrollment_token=config.getoption("disabled_enrollment_token") or None,
        expected_failures=expected,
        max_message_bytes=DEFAULT_MAX_MESSAGE_BYTES if size is None else size,
        max_message_given=size is not None,
        agent=agent,
        agent_given=config.getoption("agent_cmd") is not None,
        opamp_agent=opamp_agent,
    )


def _positive(config: pytest.Config, name: str, default: float) -> float:
    value = config.getoption(name)
    if value is None:
        return default
    if not 0 < value <= 86400:
        raise pytest.UsageError(f"--{name.replace('_', '-')} must be between 0 and 86400 seconds")
    return float(value)


def _agent_setup(
    config: pytest.Config, profile: Profile, embedded: bool, protocol: str
) -> AgentSetup | None:
    """The ``protocol`` agent under test: ``--agent-cmd``, the reference agent when nothing
    is given, or None (no agent, or one that does not speak ``protocol``)."""
    template = config.getoption("agent_cmd")
    if template is None and not embedded:
        return None
    if template is not None and config.getoption("agent_protocol") not in (protocol, "both"):
        return None
    reference = template is None
    if reference:
        default = (
            reference_agent.command() if protocol == "fleet" else reference_agent.opamp_command()
        )
    try:
        command = AgentCommand.parse(
            default if reference else template, config.getoption("agent_env")
        )
    except LaunchError as exc:
        raise pytest.UsageError(str(exc)) from None
    if reference:
        base = reference_agent.TIMING if protocol == "fleet" else reference_agent.OPAMP_TIMING
    else:
        base = Timing(DEFAULT_FLOOR if protocol == "fleet" else DEFAULT_OPAMP_FLOOR, DEFAULT_CAP)
    floor = _positive(config, "backoff_floor", base.floor)
    cap = _positive(config, "backoff_cap", max(base.cap, floor))
    if cap < floor:
        raise pytest.UsageError("--backoff-cap must not be below --backoff-floor")
    settle = reference_agent.SETTLE if reference else DEFAULT_SETTLE
    return AgentSetup(
        command=command,
        timing=Timing(floor, cap),
        window=_positive(config, "agent_window", profile.agent_window),
        settle=_positive(config, "liveness_settle", settle),
        start_timeout=_positive(config, "agent_start_timeout", 30.0),
    )


def strict_mode(config: pytest.Config) -> bool:
    """``--conformance-strict``, or pytest's own ``--strict`` (which implies it)."""
    return bool(config.getoption("conformance_strict") or config.getoption("strict", False))


def requirement_patterns(config: pytest.Config) -> tuple[list[str], list[str]]:
    """``--requirement`` and ``--exclude-requirement`` patterns, checked against the catalogue."""
    chosen = [str(p) for p in config.getoption("requirement")]
    left_out = [str(p) for p in config.getoption("exclude_requirement")]
    for pattern in chosen + left_out:
        if not fnmatch.filter(CATALOGUE, pattern):
            raise pytest.UsageError(
                f"requirement pattern {pattern!r} matches no catalogue ID"
                " (IDs look like SRV-FS-GAP, FLEET-SRV-STATUS; globs like 'SRV-FS-*')"
            )
    return chosen, left_out


def selected(ids: list[str], chosen: list[str], left_out: list[str]) -> bool:
    """Whether a test checking ``ids`` runs under the given patterns."""
    kept = [i for i in ids if not any(fnmatch.fnmatchcase(i, p) for p in left_out)]
    if not kept:
        return False
    return not chosen or any(fnmatch.fnmatchcase(i, p) for i in kept for p in chosen)


#: Verdicts ``--rerun-failed`` picks up from an earlier report.
RERUN_VERDICTS = ("fail", "warn", "error")


def selection_words(config: pytest.Config) -> list[str]:
    """The requirement selection options as given (for the report's scope)."""
    words = [f"--requirement={p}" for p in config.getoption("requirement")]
    words += [f"--exclude-requirement={p}" for p in config.getoption("exclude_requirement")]
    if config.getoption("rerun_failed"):
        words.append(f"--rerun-failed={config.getoption('rerun_failed')}")
    return words


def deselected_by_options(config: pytest.Config) -> Callable[[str], bool]:
    """Whether the selection options leave a requirement's tests out."""
    chosen, left_out = requirement_patterns(config)
    rerun = rerun_ids(config)

    def left(rid: str) -> bool:
        return not selected([rid], chosen, left_out) or (rerun is not None and rid not in rerun)

    return left


def rerun_ids(config: pytest.Config) -> set[str] | None:
    """The requirements ``--rerun-failed FILE`` asks for, or None without the option."""
    path = config.getoption("rerun_failed")
    if not path:
        return None
    where = f"--rerun-failed {path}"
    try:
        report = json.loads(Path(path).read_text())
        entries = report["requirements"]
        found = {str(r["id"]) for r in entries if r["verdict"] in RERUN_VERDICTS}
    except OSError as exc:
        raise pytest.UsageError(f"{where}: {exc.strerror or exc}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise pytest.UsageError(f"{where}: not a conformance.json report ({exc})") from None
    unknown = sorted(found - set(CATALOGUE))
    if unknown:
        raise pytest.UsageError(f"{where}: requirements unknown to this suite: {unknown}")
    return found
