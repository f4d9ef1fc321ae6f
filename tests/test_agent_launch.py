"""The agent launch contract: templates, environment, and no process or port left behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conformance.agent import reference
from conformance.agent.launch import MARKER_ENV, AgentCommand, LaunchError, launched
from conformance.catalogue import CATALOGUE
from tests.suite_runner import run_suite, suite_command

VALUES = {
    "fleet_url": "http://127.0.0.1:1",
    "opamp_url": "http://127.0.0.1:1/v1/opamp",
    "enrollment_token": "tok",
    "monitoring_port": "6791",
    "monitoring_url": "http://127.0.0.1:6791",
}


def strays(*markers: int) -> list[int]:
    """Live processes whose environment carries the launch marker of a suite process
    in ``markers`` (an xdist worker marks the agents it launches with its own pid)."""
    found = []
    wanted = {f"{MARKER_ENV}={marker}".encode() for marker in markers}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().split()[2]
        except OSError:
            continue
        if wanted & set(environ.split(b"\0")) and state != "Z":
            found.append(int(entry.name))
    return found


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_template_placeholders_and_environment_are_filled() -> None:
    command = AgentCommand.parse(
        "agent run --url={fleet_url} --token {enrollment_token} --dir '{workdir}/x y'",
        ["FLEET_URL={fleet_url}", "FLEET_ENROLL=1"],
    )
    argv, env = command.render({**VALUES, "workdir": "/w", "python": "py"})
    assert argv == ["agent", "run", "--url=http://127.0.0.1:1", "--token", "tok", "--dir", "/w/x y"]
    assert env == {"FLEET_URL": "http://127.0.0.1:1", "FLEET_ENROLL": "1"}


@pytest.mark.parametrize(
    "template, env, message",
    [
        ("", [], "empty"),
        ("agent {fleet}", [], "unknown placeholder {fleet}"),
        ("agent 'unclosed", [], "--agent-cmd"),
        ("agent {", [], "literal brace"),
        ("agent", ["NOVALUE"], "NAME=VALUE"),
        ("agent", ["X={nope}"], "unknown placeholder {nope}"),
    ],
)
def test_bad_templates_are_refused(template: str, env: list[str], message: str) -> None:
    with pytest.raises(LaunchError, match=message.replace("{", r"\{").replace("}", r"\}")):
        AgentCommand.parse(template, env)


def test_the_whole_process_group_is_killed_and_reaped() -> None:
    # The agent starts a child that ignores SIGTERM: both must be gone afterwards.
    script = (
        "import signal, subprocess, sys, time;"
        "subprocess.Popen([sys.executable, '-c',"
        " 'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)']);"
        "print('up', flush=True); time.sleep(120)"
    )
    command = AgentCommand.parse(f"{{python}} -c {script!r}")
    with launched(command, VALUES) as agent:
        deadline = time.monotonic() + 10
        while "up" not in agent.log_tail() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(strays(os.getpid())) == 2
        workdir = agent.workdir
    assert strays(os.getpid()) == []
    assert not workdir.exists()


def test_a_command_that_cannot_start_is_a_clear_error() -> None:
    with (
        pytest.raises(LaunchError, match="could not start"),
        launched(AgentCommand.parse("/nonexistent/agent"), VALUES),
    ):
        pass


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_suite_leaves_no_agent_or_port_behind(sig: int, tmp_path: Path) -> None:
    command = suite_command([*reference.suite_args(), "--requirement=FLEET-AGT-*"], tmp_path)
    suite = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 60
        running: list[int] = []
        while time.monotonic() < deadline and not running:
            running = strays(suite.pid)
            time.sleep(0.1)
        assert running, "the suite never launched an agent"
        cmdline = Path(f"/proc/{running[0]}/cmdline").read_bytes().decode().split("\0")
        port = int(next(a for a in cmdline if a.startswith("--monitoring-port=")).split("=")[1])
        time.sleep(0.5)
        suite.send_signal(sig)
        output, _ = suite.communicate(timeout=60)
    finally:
        if suite.poll() is None:
            suite.kill()
            suite.wait(timeout=10)
    assert suite.returncode != 0, output
    deadline = time.monotonic() + 10
    while strays(suite.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert strays(suite.pid) == [], output[-3000:]
    assert port_free(port), f"monitoring port {port} still in use"


def test_bad_agent_options_are_usage_errors(tmp_path: Path) -> None:
    for args, message in [
        (["--agent-cmd=agent {nope}"], "unknown placeholder"),
        (["--agent-cmd=agent", "--agent-env=BAD"], "NAME=VALUE"),
        (["--backoff-floor=10", "--backoff-cap=1"], "--backoff-cap"),
        (["--liveness-settle=0"], "--liveness-settle"),
    ]:
        run = run_suite(args, tmp_path / message.replace(" ", "-"), timeout=60)
        assert run.returncode == 4, run.output
        assert message in run.output, run.output


def test_agent_only_run_leaves_the_server_rules_out_of_scope(tmp_path: Path) -> None:
    chosen = ["--requirement=FLEET-AGT-LIVENESS-PARAM", "--requirement=SRV-UID-ECHO", "-q"]
    run = run_suite([*reference.suite_args(), *chosen], tmp_path)
    assert run.returncode == 0, run.output
    assert run.ids("pass") == {"FLEET-AGT-LIVENESS-PARAM"}
    assert run.report is not None
    listed = {r["id"] for r in run.report["requirements"]}
    # Only the Fleet agent is under test: no server or OpAMP agent rule is listed.
    assert listed == {i for i in CATALOGUE if i.startswith("FLEET-AGT-")}, listed
    scope = run.report["scope"]
    assert scope["roles_tested"] == ["Fleet agent"]
    assert set(scope["roles_not_tested"]) == {"OpAMP server", "Fleet server", "OpAMP agent"}
    assert scope["out_of_scope_requirements"] == len(CATALOGUE) - len(listed)
