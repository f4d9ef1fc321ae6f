"""One agent scenario: a mock Fleet server with a fault plan, the agent launched against it,
probes of its monitoring endpoint, and the transcript that becomes evidence.
"""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx

from conformance.agent.launch import AgentCommand, AgentProcess, launched
from conformance.agent.mock_fleet import OK, Arrival, Fault, MockFleet
from conformance.model.agent_timing import Timing

PROBE_TIMEOUT = 2.0


@dataclass(frozen=True)
class AgentSetup:
    """Everything a scenario needs from the options."""

    command: AgentCommand
    timing: Timing
    window: float
    settle: float
    start_timeout: float
    #: How long the mock holds a successful check-in (long poll), in seconds.
    checkin_hold: float = 0.5

    @property
    def hang_limit(self) -> float:
        """How long a "hang" fault keeps silent before resetting the connection."""
        return min(10.0, max(1.0, 2 * self.timing.floor))


#: Ports handed to a launched agent come from below the kernel's ephemeral range, so
#: that no outgoing connection takes one between the check and the agent's bind.
_LISTEN_PORTS = (20000, 32000)
_PORT_TRIES = 64


def free_port() -> int:
    """A loopback port free now, for an agent to listen on (outside the ephemeral range)."""
    low, high = _LISTEN_PORTS
    for _ in range(_PORT_TRIES):
        port = low + secrets.randbelow(high - low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # everything tried was taken: let the kernel pick
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def placeholder_values(fleet_url: str, opamp_url: str, token: str, port: int) -> dict[str, str]:
    """The ``--agent-cmd`` placeholders of one scenario (the launcher adds the rest)."""
    return {
        "fleet_url": fleet_url,
        "opamp_url": opamp_url,
        "opamp_ws_url": opamp_url.replace("http://", "ws://", 1),
        "enrollment_token": token,
        "monitoring_port": str(port),
        "monitoring_url": f"http://127.0.0.1:{port}",
    }


@dataclass
class Scenario:
    setup: AgentSetup
    mock: MockFleet
    agent: AgentProcess
    monitoring_port: int
    token: str
    started: float = field(default_factory=time.monotonic)
    probes: list[tuple[float, str, str]] = field(default_factory=list)
    notes: list[tuple[float, str]] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.notes.append((time.monotonic(), text))

    def probe(self, failon: str | None) -> int | None:
        """GET /liveness (with ``failon``); the status, or None when nothing answered."""
        query = "" if failon is None else f"?failon={failon}"
        url = f"http://127.0.0.1:{self.monitoring_port}/liveness{query}"
        try:
            status: int | None = httpx.get(url, timeout=PROBE_TIMEOUT).status_code
            seen = str(status)
        except httpx.HTTPError as exc:
            status, seen = None, f"no answer ({type(exc).__name__})"
        self.probes.append((time.monotonic(), f"/liveness{query}", seen))
        return status

    def wait_monitoring(self) -> bool:
        """Wait (bounded by the start timeout) until the monitoring endpoint answers."""
        deadline = time.monotonic() + self.setup.start_timeout
        url = f"http://127.0.0.1:{self.monitoring_port}/liveness"
        while time.monotonic() < deadline and self.agent.running():
            try:
                httpx.get(url, timeout=PROBE_TIMEOUT)
                return True
            except httpx.HTTPError:
                time.sleep(0.1)
        return False

    def first_request(self, endpoint: str) -> Arrival | None:
        seen = self.mock.wait_for(endpoint, 1, self.setup.start_timeout)
        return seen[0] if seen else None

    def times(self, endpoint: str) -> list[float]:
        return [a.at for a in self.mock.arrivals(endpoint)]

    def transcript(self) -> str:
        """Arrivals, probes and notes in time order, relative to the scenario start."""
        events: list[tuple[float, str]] = [
            (a.at, f"{a.endpoint:7} << {a.fault} -> answered {a.answer}")
            for a in self.mock.arrivals()
        ]
        events += [(t, f"probe   {path} -> {seen}") for t, path, seen in self.probes]
        events += [(t, f"note    {text}") for t, text in self.notes]
        lines = [f"t=+{t - self.started:7.3f}s {text}" for t, text in sorted(events)]
        tail = self.agent.log_tail(redact=(self.token,))
        if tail:
            lines += ["agent output (last lines):", *("  " + x for x in tail.splitlines())]
        return "\n".join(lines)


@contextmanager
def scenario(
    setup: AgentSetup,
    *,
    enroll: Iterable[Fault] = (),
    enroll_then: Fault = OK,
    checkin: Iterable[Fault] = (),
    checkin_then: Fault = OK,
) -> Iterator[Scenario]:
    """A mock Fleet server with this plan and a freshly launched agent; both gone on exit."""
    # Hex: a token starting with "-" would read as an option on many command lines.
    token = secrets.token_hex(20)
    mock = MockFleet(token, checkin_hold=setup.checkin_hold, hang_limit=setup.hang_limit)
    mock.plan("enroll", enroll, enroll_then)
    mock.plan("checkin", checkin, checkin_then)
    with mock:
        port = free_port()
        values = placeholder_values(mock.url, f"{mock.url}/v1/opamp", token, port)
        with launched(setup.command, values) as agent:
            yield Scenario(setup, mock, agent, port, token)
