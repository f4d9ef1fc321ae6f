"""The Fleet agent suite's judgements from a scenario's record: re-enrolment instead of a
check-in (FLEET-AGT-ENROLL-ONCE) and giving up after a transient enrolment failure
(FLEET-AGT-ENROLL-BACKOFF), on arrivals recorded by hand."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conformance.agent.launch import AgentCommand, AgentProcess
from conformance.agent.mock_fleet import OK, Arrival, Fault, MockFleet
from conformance.agent.scenario import AgentSetup, Scenario
from conformance.model.agent_timing import Timing
from conformance.suite.test_fleet_agent import enrolled_again, gave_up

SETUP = AgentSetup(
    command=AgentCommand.parse("{python} -c pass"),
    timing=Timing(floor=0.25, cap=1.0),
    window=5.0,
    settle=0.5,
    start_timeout=5.0,
)


@contextmanager
def recorded(tmp_path: Path, arrivals: list[Arrival], *, running: bool) -> Iterator[Scenario]:
    """A scenario over ``arrivals`` whose agent is a real process, running or exited."""
    code = "import time; time.sleep(30)" if running else "pass"
    proc = subprocess.Popen([sys.executable, "-c", code])
    if not running:
        proc.wait(timeout=10)
    try:
        with MockFleet("token") as mock:
            for arrival in arrivals:
                mock.record(arrival)
            yield Scenario(SETUP, mock, AgentProcess(proc, tmp_path, []), 0, "token")
    finally:
        proc.kill()
        proc.wait(timeout=10)


def enrol(at: float, answer: str = "200") -> Arrival:
    fault = OK if answer == "200" else Fault(answer)
    return Arrival(at, "enroll", fault, answer)


def checkin(at: float) -> Arrival:
    return Arrival(at, "checkin", OK, "200")


def test_enrolling_again_before_any_check_in_is_found(tmp_path: Path) -> None:
    with recorded(tmp_path, [enrol(1.0, "503"), enrol(2.0), enrol(2.5)], running=True) as sc:
        pair = enrolled_again(sc)
    assert pair is not None and (pair[0].at, pair[1].at) == (2.0, 2.5)


def test_enrolling_again_after_a_check_in_is_not_this_rule(tmp_path: Path) -> None:
    arrivals = [enrol(1.0), checkin(1.1), enrol(3.0)]
    with recorded(tmp_path, arrivals, running=True) as sc:
        assert enrolled_again(sc) is None


def test_arrivals_recorded_out_of_order_are_read_in_time_order(tmp_path: Path) -> None:
    with recorded(tmp_path, [checkin(1.1), enrol(1.0), enrol(3.0)], running=True) as sc:
        assert enrolled_again(sc) is None


def test_no_successful_enrolment_is_no_re_enrolment(tmp_path: Path) -> None:
    with recorded(tmp_path, [enrol(1.0, "503"), enrol(2.0, "503")], running=True) as sc:
        assert enrolled_again(sc) is None


def test_exit_after_a_transient_failure_is_giving_up(tmp_path: Path) -> None:
    with recorded(tmp_path, [enrol(1.0, "503")], running=False) as sc:
        last = gave_up(sc, "enroll")
    assert last is not None and last.fault == Fault("503")


def test_exit_after_a_401_or_a_success_is_not_giving_up(tmp_path: Path) -> None:
    for arrivals in ([enrol(1.0, "401")], [enrol(1.0, "503"), enrol(2.0)]):
        with recorded(tmp_path, arrivals, running=False) as sc:
            assert gave_up(sc, "enroll") is None


def test_a_running_agent_has_not_given_up(tmp_path: Path) -> None:
    with recorded(tmp_path, [enrol(1.0, "503")], running=True) as sc:
        assert gave_up(sc, "enroll") is None
