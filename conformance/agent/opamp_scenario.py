"""One OpAMP agent scenario: the mock OpAMP server with a reply plan, the agent launched
against it, and the transcript that becomes evidence.

A mock Fleet server runs beside it (answering every request normally), so an
agent that enrols before it speaks OpAMP finds what it needs.
"""

from __future__ import annotations

import secrets
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypedDict, Unpack

from conformance.agent.launch import AgentProcess, launched
from conformance.agent.mock_fleet import MockFleet
from conformance.agent.mock_opamp import MockOpAMP
from conformance.agent.scenario import AgentSetup, free_port, placeholder_values
from conformance.model.opamp_agent import ACK, Received, Reply, offered_heartbeat


class AgentSilent(RuntimeError):
    """The launched agent never spoke OpAMP to the mock: a set-up problem, not a finding."""


@dataclass
class OpAMPScenario:
    setup: AgentSetup
    mock: MockOpAMP
    agent: AgentProcess
    token: str
    started: float = field(default_factory=time.monotonic)
    notes: list[tuple[float, str]] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.notes.append((time.monotonic(), text))

    @property
    def deadline(self) -> float:
        return self.started + self.setup.window

    def messages(self) -> list[Received]:
        return self.mock.received()

    @property
    def transport(self) -> str:
        """ "http" or "ws": how the agent spoke first."""
        seen = self.mock.received()
        return seen[0].transport if seen else "http"

    def first_contact(self) -> str:
        """What the agent did first, in words: the evidence of the transport it speaks."""
        seen = self.mock.received()
        tries = self.mock.attempts()
        if seen and (not tries or seen[0].at <= tries[0].at):
            first = seen[0]
            if first.transport == "http":
                ctype = first.header("Content-Type") or "(none)"
                return (
                    f"the agent connected over plain HTTP: POST {self.mock.url}"
                    f" (Content-Type {ctype}) carrying {first.describe()}"
                )
            return f"the agent opened a WebSocket and sent {first.describe()}"
        if tries:
            return f"the agent asked for a WebSocket upgrade at {self.mock.ws_url}"
        return "the agent sent nothing"

    def wait(self, count: int, *, until: float | None = None) -> list[Received]:
        """Messages once ``count`` arrived, the agent exited, or the window (or ``until``) ended."""
        end = min(self.deadline, until) if until is not None else self.deadline
        while time.monotonic() < end and self.agent.running():
            if len(self.mock.received()) >= count:
                break
            time.sleep(0.01)
        return self.mock.received()

    def watch(
        self, until: float, done: Callable[[list[Received]], bool] | None = None
    ) -> list[Received]:
        """Messages once ``until`` came (or the messages so far are ``done``, or the agent
        exited), whatever the window: for a rule that must watch a fixed time after an
        event (the caller bounds ``until``)."""
        while time.monotonic() < until and self.agent.running():
            if done is not None and done(self.mock.received()):
                break
            time.sleep(0.01)
        return self.mock.received()

    def wait_events(self, count: int, *, until: float | None = None) -> list[float]:
        """Times of messages and WebSocket connection attempts, until ``count`` were seen."""
        end = min(self.deadline, until) if until is not None else self.deadline
        while time.monotonic() < end and self.agent.running():
            if len(self.events()) >= count:
                break
            time.sleep(0.01)
        return self.events()

    def events(self) -> list[float]:
        """Arrival times of plain-HTTP requests and WebSocket upgrade attempts."""
        times = [r.at for r in self.mock.received() if r.transport == "http"]
        times += [c.at for c in self.mock.attempts()]
        return sorted(times)

    def stop_with(self, signum: signal.Signals, grace: float) -> bool:
        """Send ``signum`` to the agent's process group; True when it exited within ``grace``."""
        self.note(f"sent {signum.name} to the agent")
        return self.agent.interrupt(signum, grace)

    def transcript(self) -> str:
        """Everything the mock saw, in time order, relative to the scenario start."""
        events: list[tuple[float, str]] = []
        for r in self.mock.received():
            where = "http" if r.transport == "http" else f"ws#{r.connection}"
            extra = f" in-flight={r.in_flight}" if r.in_flight > 1 else ""
            ctype = r.header("Content-Type") if r.transport == "http" else None
            ct = f" ct={ctype}" if ctype is not None else ""
            offer = offered_heartbeat(r) if r.reply.kind != "heartbeat" else None
            also = f" +heartbeat offer ({offer} s)" if offer else ""
            events.append((r.at, f"{where:5} << {r.describe()}{ct}{extra} -> {r.reply}{also}"))
        for c in self.mock.attempts():
            events.append((c.at, f"ws    connect -> {c.answer}"))
        events += [(t, "ws    >> push (asks for nothing)") for t in self.mock.pushes()]
        events += [(t, f"note  {text}") for t, text in self.notes]
        lines = [f"t=+{t - self.started:7.3f}s {text}" for t, text in sorted(events)]
        if not self.agent.running():
            lines.append(f"agent exited with status {self.agent.proc.returncode}")
        tail = self.agent.log_tail(redact=(self.token,))
        if tail:
            lines += ["agent output (last lines):", *("  " + x for x in tail.splitlines())]
        return "\n".join(lines)


class Plan(TypedDict, total=False):
    """What the mock OpAMP server answers (see :class:`MockOpAMP`)."""

    #: Replies to the first messages, in order; then ``then`` to every later one.
    replies: Iterable[Reply]
    then: Reply
    #: HTTP statuses refusing the first WebSocket upgrades (0 accepts one), or throttling
    #: replies ("429", "503") with their Retry-After.
    refuse: Iterable[int | Reply]
    #: Seconds each plain-HTTP reply is held.
    hold: float
    #: Heartbeat interval offered on each WebSocket connection's first reply.
    ws_heartbeat: int | None
    #: Heartbeat interval offered on the first reply, plain HTTP and WebSocket alike (to
    #: an agent declaring ReportsHeartbeat and AcceptsOpAMPConnectionSettings).
    heartbeat: int | None


@contextmanager
def opamp_scenario(setup: AgentSetup, **plan: Unpack[Plan]) -> Iterator[OpAMPScenario]:
    """A mock OpAMP server with this plan and a freshly launched agent; all gone on exit."""
    token = secrets.token_hex(20)
    every = plan.get("heartbeat")
    mock = MockOpAMP(
        hold=plan.get("hold", 0.0),
        ws_heartbeat=plan.get("ws_heartbeat", every),
        http_heartbeat=every,
    )
    with mock, MockFleet(token) as fleet:
        mock.plan(plan.get("replies", ()), plan.get("then", ACK))
        mock.refuse_connections(plan.get("refuse", ()))
        values = placeholder_values(fleet.url, mock.url, token, free_port())
        with launched(setup.command, values) as agent:
            yield OpAMPScenario(setup, mock, agent, token)


@contextmanager
def running_opamp_agent(setup: AgentSetup, **plan: Unpack[Plan]) -> Iterator[OpAMPScenario]:
    """A scenario whose agent has been seen to speak OpAMP (a message or a connection attempt)."""
    with opamp_scenario(setup, **plan) as sc:
        end = time.monotonic() + setup.start_timeout
        while time.monotonic() < end and sc.agent.running():
            if sc.mock.received() or sc.mock.attempts():
                break
            time.sleep(0.01)
        if not (sc.mock.received() or sc.mock.attempts()):
            raise AgentSilent(
                f"the agent sent no OpAMP message within {setup.start_timeout:g} s"
                f" (running: {sc.agent.running()}); check --agent-cmd, --agent-env and"
                " --agent-protocol\n" + sc.transcript()
            )
        yield sc
