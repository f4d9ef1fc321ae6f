"""The plugin as a user meets it: options, bad input, real targets, redaction, exit codes."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance.agent.scenario import free_port
from conformance.catalogue import CATALOGUE
from conformance.plugin.embedded import EmbeddedServer
from tests.suite_runner import REPO, run_suite, suite_command

OPTIONS = [
    "--target",
    "--target-header",
    "--transport",
    "--profile",
    "--conformance-strict",
    "--certify",
    "--strict",
    "--report-dir",
    "--request-timeout",
    "--max-message-bytes",
    "--enrollment-token",
    "--disabled-enrollment-token",
    "--requirement",
    "--exclude-requirement",
    "--expected-failures",
    "--rerun-failed",
    "--agent-cmd",
    "--agent-env",
    "--backoff-floor",
    "--backoff-cap",
    "--liveness-settle",
    "--agent-window",
    "--agent-start-timeout",
    "--agent-protocol",
    "--agent-examples",
    "--shrink-budget",
]


@pytest.fixture
def reference() -> object:
    server = EmbeddedServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_help_lists_every_option() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    ).stdout
    section = out[out.index("fleet-conformance") :]
    for option in OPTIONS:
        assert option in (section if option != "--strict" else out), option
    assert "redacted" in section and "quick" in section and "nightly" in section


def test_embedded_reference_passes_and_writes_reports(tmp_path: Path) -> None:
    # With -n 2: the xdist workers report to the controller, which writes one set.
    run = run_suite(["-n", "2", "-q"], tmp_path)
    assert run.returncode == 0, run.output
    assert run.report is not None
    # The reference OpAMP agent speaks plain HTTP: the WebSocket-only rule does not apply.
    assert run.ids("not applicable") == {"AGT-DISCONNECT"}, run.output
    assert run.ids("pass") == set(CATALOGUE) - {"AGT-DISCONNECT"}
    assert run.report["certification"]["verdict"] == "CERTIFIED"
    assert run.output.rstrip().splitlines()[-1].startswith("fleet-conformance: CERTIFIED")
    assert run.report["targets"] == ["embedded reference server (fixtures.reference.server)"]
    for name in ("junit.xml", "conformance.html", "allure-results"):
        assert (tmp_path / "reports" / name).exists(), name
    assert "fleet-conformance verdicts" in run.output


@pytest.mark.parametrize("scheme", ["http", "ws"])
def test_separately_started_reference_passes(
    scheme: str, reference: EmbeddedServer, tmp_path: Path
) -> None:
    url = reference.url.replace("http://", f"{scheme}://")
    run = run_suite([f"--target={url}", "-q"], tmp_path)
    assert run.returncode == 0, run.output
    # One instance, no credentials, no enrollment token, the default 64 MiB limit in
    # the quick profile: the target serves requests without credentials (not applicable,
    # with its answer); the rest is not judged, each with its remedy. The Fleet rules
    # one of whose cases needs a token judge every other case, then stay not judged
    # (and so does FLEET-SRV-ERROR-SHAPE, which only their tests judge).
    fleet_cases = {"FLEET-SRV-ENROLL-401", "FLEET-SRV-CHECKIN-401", "FLEET-SRV-NO-5XX"}
    not_judged = {
        "SRV-413",
        "SRV-FS-STATELESS",
        "FLEET-SRV-ENROLL-OK",
        "FLEET-SRV-CHECKIN-POLL",
        "FLEET-SRV-ERROR-SHAPE",
        "FLEET-SRV-ACK",
        "FLEET-SRV-BAD-BODY",
        "FLEET-SRV-413",
        *fleet_cases,
    }
    assert run.ids("not applicable") == {"SRV-AUTH-401"}, run.output
    assert run.ids("not judged") == not_judged, run.output
    assert run.report is not None
    assert all(r["remedy"] for r in run.report["requirements"] if r["verdict"] == "not judged")
    # A --target without --agent-cmd: no agent under test, the agent rules are out of scope.
    agent_rules = {i for i in CATALOGUE if i.startswith(("FLEET-AGT-", "AGT-"))}
    assert {r["id"] for r in run.report["requirements"]} == set(CATALOGUE) - agent_rules
    assert run.ids("pass") == set(CATALOGUE) - agent_rules - not_judged - {"SRV-AUTH-401"}
    cert = run.report["certification"]
    assert cert["verdict"] == "INCOMPLETE", cert
    must = {"SRV-413", "FLEET-SRV-ENROLL-OK", "FLEET-SRV-ACK", *fleet_cases}
    assert {m["id"] for m in cert["not_judged"]} == must
    assert "[http]" in run.output or "passed" in run.output


def test_unreachable_target_is_one_clear_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    run = run_suite([f"--target={url}"], tmp_path, timeout=60)
    assert run.returncode == 4, run.output
    assert "unreachable" in run.output and url in run.output
    assert "FAILED" not in run.output
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(
    "args, message",
    [
        (["--target=ftp://example"], "scheme must be http"),
        (["--target-header", "no-colon-here"], "Name: value"),
        (["--profile=huge"], "invalid choice"),
        (["--request-timeout=0"], "--request-timeout"),
        (["--max-message-bytes=10"], "--max-message-bytes"),
        (["--requirement=NOPE-*"], "matches no catalogue ID"),
        (["--report-dir", "/tmp"], "--report-dir=VALUE"),
    ],
)
def test_bad_options_are_usage_errors(args: list[str], message: str, tmp_path: Path) -> None:
    run = run_suite(args, tmp_path, timeout=60)
    assert run.returncode == 4, run.output
    assert message in run.output


def test_credentials_are_redacted_everywhere(tmp_path: Path) -> None:
    secret = "Bearer s3cr3t-token-value"
    token = base64.b64encode(b"redaction-id:t0ps3cret-enrolment").decode()
    disabled = base64.b64encode(b"redaction-id:d1sabled-enrolment").decode()
    server = EmbeddedServer(
        args=[
            "--auth-header",
            f"Authorization: {secret}",
            f"--enrollment-token={token}",
            f"--enrollment-token={disabled}",
            f"--disabled-enrollment-token={disabled}",
        ]
    )
    url = server.start()
    try:
        denied = run_suite([f"--target={url}", "-q", "-x"], tmp_path / "denied")
        allowed = run_suite(
            [
                f"--target={url}",
                "--target-header",
                f"Authorization: {secret}",
                f"--enrollment-token={token}",
                # Without it FLEET-SRV-ENROLL-401 is not judged (its disabled-token case).
                f"--disabled-enrollment-token={disabled}",
                "-v",
            ],
            tmp_path / "allowed",
        )
    finally:
        server.stop()
    assert denied.returncode == 1, denied.output
    assert allowed.returncode == 0, allowed.output
    assert "Authorization: Be***" in allowed.output
    assert "enrollment token: cm***" in allowed.output
    assert allowed.ids("pass") >= {"FLEET-SRV-ENROLL-OK", "FLEET-SRV-ENROLL-401"}
    for path in (tmp_path / "allowed").rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert "s3cr3t" not in text and token not in text and disabled not in text, path
    assert "s3cr3t" not in allowed.output and token not in allowed.output
    assert disabled not in allowed.output


def test_target_killed_mid_run_ends_with_verdicts(tmp_path: Path) -> None:
    server = EmbeddedServer()
    url = server.start()
    report_dir = tmp_path / "reports"
    command = suite_command(
        [f"--target={url}", "--profile=nightly", "--request-timeout=1", "-v"], report_dir
    )
    suite = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert suite.stdout is not None
    seen: list[str] = []
    try:
        # Kill the target once the suite is under way (first verdict printed).
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = suite.stdout.readline()
            seen.append(line)
            if not line or "PASSED" in line or "FAILED" in line:
                break
        server.stop()
        rest, _ = suite.communicate(timeout=240)
        output = "".join(seen) + rest
    finally:
        if suite.poll() is None:
            suite.kill()
        server.stop()
    assert suite.returncode == 1, output
    assert "could not connect" in output or "connection dropped" in output, output[-3000:]
    assert (report_dir / "conformance.json").exists()


def test_requirement_selection_runs_only_the_chosen_rules(tmp_path: Path) -> None:
    run = run_suite(
        ["--requirement=SRV-FS-*", "--exclude-requirement=SRV-FS-STATELESS", "-q"], tmp_path
    )
    assert run.returncode == 0, run.output
    judged = {i for i in CATALOGUE if i.startswith("SRV-FS-") and i != "SRV-FS-STATELESS"}
    assert run.ids("pass") == judged, run.output
    assert run.ids("not judged") == set(CATALOGUE) - judged
    assert run.report is not None
    assert run.report["certification"]["verdict"] == "INCOMPLETE"
    assert run.report["scope"]["selection"] == [
        "--requirement=SRV-FS-*",
        "--exclude-requirement=SRV-FS-STATELESS",
    ]


def test_a_crashed_worker_is_a_harness_error_never_a_clean_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEET_CONFORMANCE_CRASH", "SRV-UID-ECHO")
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    args = ["--requirement=SRV-UID-ECHO", "-n", "2", "-p", "tests.crash_plugin", "-q"]
    run = run_suite(args, tmp_path)
    assert run.returncode == 3, run.output[-3000:]
    assert run.report is not None
    cert = run.report["certification"]
    assert cert["verdict"] == "NOT CERTIFIED", cert
    assert any("without a verdict" in b for b in cert["blockers"]), cert


def test_certify_makes_an_incomplete_verdict_a_failing_exit_code(tmp_path: Path) -> None:
    args = ["--requirement=SRV-UID-ECHO", "-q"]
    plain = run_suite(args, tmp_path / "plain")
    assert plain.returncode == 0, plain.output
    certify = run_suite([*args, "--certify"], tmp_path / "certify")
    assert certify.returncode == 6, certify.output
    assert certify.report is not None and certify.report["exit_status"] == 6
    last = certify.output.rstrip().splitlines()[-1]
    assert last.startswith("fleet-conformance: INCOMPLETE: "), last
    assert "to judge: run without those options" in last, last


def test_console_entry_point_runs_the_installed_suite_anywhere(tmp_path: Path) -> None:
    command = Path(sys.executable).parent / "fleet-conformance"
    assert command.exists(), "pip install -e . installs the fleet-conformance command"
    # Another project's pytest configuration in the caller's directory is ignored.
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = --no-such-option\n")
    proc = subprocess.run(
        [str(command), "--requirement=SRV-UID-ECHO", "-q", "--report-dir=out"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "fleet-conformance verdicts" in output
    for name in ("conformance.json", "conformance.html", "junit.xml"):
        assert (tmp_path / "out" / name).exists(), name
    assert '"SRV-UID-ECHO"' in (tmp_path / "out" / "conformance.json").read_text()


PROBE = """
import sys, pytest
class Probe:
    @pytest.hookimpl(trylast=True)
    def pytest_configure(self, config):
        print("maxschedchunk", config.option.maxschedchunk, flush=True)
        pytest.exit("probed", 0)
sys.exit(pytest.main(sys.argv[1:], plugins=[Probe()]))
"""


@pytest.mark.parametrize("given, used", [([], "1"), (["--maxschedchunk=4"], "4")])
def test_xdist_hands_suite_tests_out_one_at_a_time(
    given: list[str], used: str, tmp_path: Path
) -> None:
    # Runs of consecutive tests would put all agent tests on one worker.
    command = suite_command(["-n", "0", *given], tmp_path)
    probe = [sys.executable, "-c", PROBE, *command[3:]]
    done = subprocess.run(probe, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert f"maxschedchunk {used}\n" in done.stdout, done.stdout + done.stderr
