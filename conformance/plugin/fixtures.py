"""Fixtures the conformance tests use: the session's targets, transports and drivers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from conformance.agent.scenario import AgentSetup
from conformance.drivers.factory import open_driver
from conformance.drivers.http import HttpDriver
from conformance.drivers.ws import WsDriver
from conformance.outcomes import out_of_scope
from conformance.plugin.embedded import EmbeddedError
from conformance.plugin.options import Options, read_options
from conformance.plugin.results import COVERAGE_KEY, NOTE_KEY, TRANSPORT_KEY
from conformance.plugin.targets import TargetSession
from conformance.scenarios.coverage import FeatureRecord
from conformance.scope import Part
from conformance.target import Target, Transport

EXIT_HARNESS = 3


@pytest.fixture(scope="session")
def conformance_options(pytestconfig: pytest.Config) -> Options:
    """The parsed ``--target``/``--profile``/... options."""
    return read_options(pytestconfig)


@pytest.fixture(scope="session")
def conformance_session(conformance_options: Options) -> Iterator[TargetSession]:
    """The targets under test; starts (and finally stops) the embedded reference if needed."""
    if conformance_options.agent_only:
        out_of_scope("an agent is under test (--agent-cmd) and no --target: no server to test")
    session = TargetSession(conformance_options)
    try:
        session.start()
    except EmbeddedError as exc:
        pytest.exit(f"fleet-conformance: {exc}", returncode=EXIT_HARNESS)
    try:
        yield session
    finally:
        session.stop()


@pytest.fixture(scope="session")
def target(conformance_session: TargetSession) -> Target:
    """The (first) target under test."""
    return conformance_session.primary


@pytest.fixture
def transport(
    request: pytest.FixtureRequest, conformance_session: TargetSession, target: Target
) -> Transport:
    """The transport this test instance runs over (parametrised by the plugin)."""
    chosen = Transport(request.param)
    conformance_session.require_transport(target, chosen)
    return chosen


class Clients:
    """Opens drivers on the target with the session's headers and timeouts; closes them all."""

    def __init__(
        self,
        target: Target,
        options: Options,
        headers: list[tuple[str, str]] | None = None,
        on_open: Callable[[Transport], None] | None = None,
    ) -> None:
        self.target = target
        self.options = options
        self.headers = list(options.headers) if headers is None else headers
        self._open: list[HttpDriver | WsDriver] = []
        self._on_open = on_open

    def __repr__(self) -> str:
        return f"Clients({self.target.display})"

    def open(
        self, transport: Transport, headers: list[tuple[str, str]] | None = None
    ) -> HttpDriver | WsDriver:
        """A driver sending the session's headers (or ``headers`` instead of them)."""
        driver = open_driver(
            self.target,
            transport,
            self.headers if headers is None else headers,
            timeout=self.options.profile.request_timeout,
        )
        self._open.append(driver)
        if self._on_open is not None:
            self._on_open(transport)
        return driver

    def on(self, target: Target) -> Clients:
        """Clients for another instance of the same service (same headers and bounds)."""
        other = Clients(target, self.options, self.headers, self._on_open)
        other._open = self._open  # closed together
        return other

    def http(self) -> HttpDriver:
        driver = self.open(Transport.HTTP)
        assert isinstance(driver, HttpDriver)
        return driver

    def ws(self) -> WsDriver:
        driver = self.open(Transport.WS)
        assert isinstance(driver, WsDriver)
        return driver

    def close(self) -> None:
        for driver in self._open:
            driver.close()
        self._open.clear()


@pytest.fixture
def opamp(
    request: pytest.FixtureRequest,
    target: Target,
    conformance_options: Options,
    conformance_session: TargetSession,
) -> Iterator[Clients]:
    """Driver factory for one test: ``opamp.open(transport)``, ``opamp.http()``, ``opamp.ws()``."""
    properties = request.node.user_properties

    def note(transport: Transport) -> None:
        entry = (TRANSPORT_KEY, f"{Part.OPAMP_SERVER.value}/{transport.value}")
        if entry not in properties:
            properties.append(entry)

    clients = Clients(target, conformance_options, conformance_session.headers, note)
    try:
        yield clients
    finally:
        clients.close()


@pytest.fixture
def observe(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Record an observation that goes into the report even when the test passes."""
    node = request.node

    def note(text: str) -> None:
        node.user_properties.append((NOTE_KEY, text))

    return note


@pytest.fixture
def scenario_features(request: pytest.FixtureRequest) -> Callable[[FeatureRecord], None]:
    """Record the scenario features a drift test reached (the report's ``coverage``)."""
    node = request.node

    def record(features: FeatureRecord) -> None:
        node.user_properties.append((COVERAGE_KEY, json.dumps(features.to_json())))

    return record


@pytest.fixture(scope="session")
def agent_setup(conformance_options: Options) -> AgentSetup:
    """The agent under test and its timing bounds (skips the agent tests when there is none)."""
    if conformance_options.agent is None:
        if conformance_options.opamp_agent is not None:
            out_of_scope("the agent under test speaks OpAMP only (--agent-protocol)")
        out_of_scope("no --agent-cmd: no agent under test")
    return conformance_options.agent


@pytest.fixture(scope="session")
def opamp_agent_setup(conformance_options: Options) -> AgentSetup:
    """The OpAMP agent under test (skips the OpAMP agent tests when there is none)."""
    if conformance_options.opamp_agent is None:
        if conformance_options.agent is not None:
            out_of_scope(
                "the agent under test speaks Fleet only"
                " (--agent-protocol=opamp or both for an OpAMP agent)"
            )
        out_of_scope("no --agent-cmd: no agent under test")
    return conformance_options.opamp_agent
