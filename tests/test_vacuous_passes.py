"""No vacuous passes: a server test that could not judge its rule never passes.

The suite's own test functions run here in-process against a twin's logic
through a loopback stand-in for the drivers (no network), or against small
servers on 127.0.0.1. Each case proves one path that used to return or pass
without judging: it now ends *not judged* (with a remedy the user can act
on) or *not applicable* (with the target's own answer as evidence). A run
that judged part of what it saw still judges it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Self

import pytest
from aiohttp import WSMsgType, web

import conformance.suite.test_server_hostile as hostile
from conformance import profiles
from conformance.checks import Refusals, Transcript, expect_reply, retry_throttled
from conformance.drivers import Exchange, Problem, WsDriver
from conformance.drivers.exchange import Attempt
from conformance.fleet.client import FleetClient, FleetTranscript
from conformance.messages import full_status, heartbeat, new_uid
from conformance.outcomes import NotApplicable, NotJudged
from conformance.scenarios.coverage import FeatureRecord
from conformance.scenarios.drift import DriftRun, Focus, Tally
from conformance.suite import (
    test_fleet_server,
    test_server_access,
    test_server_drift,
    test_server_hygiene,
    test_server_offers,
    test_server_stateless,
)
from conformance.target import Transport, parse_target
from conformance.verdicts import Violation
from conformance.wire import (
    AgentToServer,
    ErrorType,
    ServerCap,
    ServerToAgent,
    parse_agent_to_server,
    ws_frame,
    ws_unframe,
)
from fixtures.reference.logic import OpAMPLogic, error_reply
from fixtures.reference.twins import NeverFlags, OmitsFirstCapabilities, RefusesEverything
from tests.misbehaving import AiohttpServer

HTTP = Transport.HTTP


@dataclasses.dataclass
class Ended:
    """How a test ended: the outcome exception (``value``) once the block is left."""

    value: Any = None


@contextlib.contextmanager
def ends(kind: type[BaseException], match: str | None = None) -> Iterator[Ended]:
    """Like ``pytest.raises``, for :mod:`conformance.outcomes`: any other skip fails the test.

    (Under ``pytest.raises`` a plain ``pytest.skip`` would escape and show the
    test as skipped rather than failed.)
    """
    ended = Ended()
    try:
        yield ended
    except pytest.skip.Exception as exc:
        if not isinstance(exc, kind):
            pytest.fail(f"ended as {type(exc).__name__} ({exc}), expected {kind.__name__}")
        if match is not None and not re.search(match, str(exc)):
            pytest.fail(f"{kind.__name__} {str(exc)!r} does not match {match!r}")
        ended.value = exc
        return
    pytest.fail(f"the test did not end as {kind.__name__}")


class StandInDriver:
    """What a stand-in driver shares with the real ones: a no-op close, and ``with``."""

    def close(self) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Loopback(StandInDriver):
    """Stands in for a driver: hands each message straight to a target's logic."""

    transport = "http"

    def __init__(self, logic: OpAMPLogic) -> None:
        self.logic = logic
        self.sent: list[AgentToServer] = []

    def send(self, msg: AgentToServer, *, timeout: float | None = None) -> Exchange:
        self.sent.append(msg)
        return Attempt("http", msg, msg.ByteSize()).finish(status=200, reply=self.logic.handle(msg))


class LoopbackClients:
    """Stands in for the ``opamp`` fixture: every driver talks to one logic."""

    def __init__(self, logic: OpAMPLogic, headers: list[tuple[str, str]] | None = None) -> None:
        self.logic = logic
        self.headers = headers or []
        self.opened: list[tuple[Transport, list[tuple[str, str]] | None]] = []

    def open(self, transport: Transport, headers: list[tuple[str, str]] | None = None) -> Any:
        self.opened.append((transport, headers))
        return Loopback(self.logic)


def clients(logic: OpAMPLogic, headers: list[tuple[str, str]] | None = None) -> Any:
    return LoopbackClients(logic, headers)


class RefusesFirst(OpAMPLogic):
    """The reference, except that the very first message it sees gets error_response UNKNOWN."""

    refused = False

    def handle(self, msg: AgentToServer) -> ServerToAgent | None:
        if not self.refused:
            self.refused = True
            return error_reply(msg.instance_uid, ErrorType.UNKNOWN, "warming up")
        return super().handle(msg)


class NeverFlagsRefusesFirst(NeverFlags, RefusesFirst):
    """Never sets ReportFullState, and refuses the first message it sees."""


class DeclaresNoOffers(OpAMPLogic):
    """The reference without OffersRemoteConfig among its capabilities."""

    def handle(self, msg: AgentToServer) -> ServerToAgent | None:
        reply = super().handle(msg)
        if reply is not None and reply.capabilities:
            reply.capabilities = ServerCap.ACCEPTS_STATUS | ServerCap.ACCEPTS_EFFECTIVE_CONFIG
            reply.ClearField("remote_config")
        return reply


class NeverErrors(OpAMPLogic):
    """Serves even the messages the reference refuses: never an error_response."""

    def error(self, uid: bytes, text: str) -> ServerToAgent:
        return ServerToAgent(instance_uid=uid, capabilities=ServerCap.ACCEPTS_STATUS)


def bad_request_to_everything(msg: AgentToServer) -> ServerToAgent:
    return error_reply(msg.instance_uid, ErrorType.BAD_REQUEST, "malformed")


# --- drift (SRV-FS-*) -----------------------------------------------------------


@pytest.mark.parametrize(
    "focus", [f for f in Focus if f is not Focus.SHOULD and f is not Focus.STATELESS]
)
def test_drift_focus_whose_every_reply_was_refused_is_not_judged(focus: Focus) -> None:
    with ends(NotJudged) as caught:
        test_server_drift._play(clients(RefusesEverything()), HTTP, focus, _ignore)
    assert "every reply was an error_response of type UNKNOWN" in caught.value.reason
    assert focus.value in caught.value.reason
    assert "--target-header" in caught.value.remedy


def _ignore(features: FeatureRecord) -> None:
    """Scenario features are not what these tests are about."""


def test_should_drift_run_whose_every_reply_was_refused_is_not_judged() -> None:
    with ends(NotJudged, match="every reply was an error_response"):
        test_server_drift.test_no_full_state_request_without_drift(
            clients(RefusesEverything()), HTTP, _ignore
        )


def test_drift_run_with_one_refused_reply_judges_everything_else() -> None:
    tally = test_server_drift._play(clients(RefusesFirst()), HTTP, Focus.NEW, _ignore)
    assert tally.refusals.refused == {"UNKNOWN": 1}
    assert tally.must_chances["SRV-FS-NEW"] > 0
    with pytest.raises(Violation) as caught:
        test_server_drift._play(clients(NeverFlagsRefusesFirst()), HTTP, Focus.NEW, _ignore)
    assert caught.value.req_id == "SRV-FS-NEW"


def test_drift_tally_counts_the_replies_each_rule_was_judged_on() -> None:
    tally = Tally()
    logic = OpAMPLogic()
    scenario = test_server_stateless.INTERLEAVED_DUPLICATE
    DriftRun(lambda: Loopback(logic), Focus.GAP, tally, new_uid).play(scenario)
    assert tally.must_chances == {"SRV-FS-GAP": 1}
    assert tally.unjudged(Focus.GAP) == [] and tally.unjudged(Focus.NEW) == ["SRV-FS-NEW"]
    with ends(NotJudged, match="no reply gave SRV-FS-NEW a chance"):
        tally.require_judged(Focus.NEW)


def test_convergence_with_every_exchange_refused_is_not_judged() -> None:
    with ends(NotJudged, match="SRV-FS-CONVERGE"):
        test_server_drift.test_full_state_exchange_settles(clients(RefusesEverything()), HTTP)
    test_server_drift.test_full_state_exchange_settles(clients(OpAMPLogic()), HTTP)


# --- hygiene and offers ------------------------------------------------------------


def test_first_reply_check_after_refused_first_contacts_is_not_judged() -> None:
    with ends(NotJudged, match="every reply was an error_response of type UNKNOWN"):
        test_server_hygiene.test_first_reply_declares_capabilities(
            clients(RefusesEverything()), HTTP
        )
    # Judged when the first contacts are answered: held, or broken.
    test_server_hygiene.test_first_reply_declares_capabilities(clients(OpAMPLogic()), HTTP)
    with pytest.raises(Violation, match="SRV-CAPS-FIRST"):
        test_server_hygiene.test_first_reply_declares_capabilities(
            clients(OmitsFirstCapabilities()), HTTP
        )


def test_error_exclusivity_without_any_error_response_is_not_applicable() -> None:
    with ends(NotApplicable) as caught:
        test_server_hygiene.test_error_response_stands_alone(
            clients(NeverErrors()),
            HTTP,
            None,  # type: ignore[arg-type]
        )
    assert "instance_uid of 5 bytes" in caught.value.evidence


def test_offers_with_every_reply_refused_are_not_judged() -> None:
    with ends(NotJudged, match="SRV-CAP-RESPECT"):
        test_server_offers.test_nothing_offered_that_the_agent_cannot_accept(
            clients(RefusesEverything()), HTTP
        )
    with ends(NotJudged, match="SRV-RCFG-HASH"):
        test_server_offers.test_remote_config_resent_when_agent_hash_differs(
            clients(RefusesEverything()), HTTP
        )


def test_remote_config_rule_of_a_target_offering_none_is_not_applicable() -> None:
    with ends(NotApplicable) as caught:
        test_server_offers.test_remote_config_resent_when_agent_hash_differs(
            clients(DeclaresNoOffers()), HTTP
        )
    assert "capabilities 0x5" in caught.value.evidence


def test_bad_request_to_a_well_formed_message_breaks_srv_reply() -> None:
    msg = full_status(new_uid(), 0)
    refused = Attempt("http", msg, 1).finish(status=200, reply=bad_request_to_everything(msg))
    with pytest.raises(Violation) as caught:
        expect_reply(Transcript(), refused)
    assert caught.value.req_id == "SRV-REPLY" and "BAD_REQUEST" in caught.value.message
    # Malformed (a 5-byte uid, or no ReportsStatus): BAD_REQUEST is the right answer.
    for odd in (heartbeat(b"\x01" * 5, 0), AgentToServer(instance_uid=new_uid())):
        answer = Attempt("http", odd, 1).finish(status=200, reply=bad_request_to_everything(odd))
        assert expect_reply(Transcript(), answer).error_response.type == ErrorType.BAD_REQUEST
    # UNKNOWN says processing failed, which a server may say of any message.
    unknown = error_reply(msg.instance_uid, ErrorType.UNKNOWN, "failed")
    expect_reply(Transcript(), Attempt("http", msg, 1).finish(status=200, reply=unknown))


def test_throttling_to_the_end_is_not_judged_with_a_remedy() -> None:
    busy = Attempt("http", None, 0).finish(status=503, headers={"Retry-After": "0"})
    with ends(NotJudged) as caught:
        retry_throttled(Transcript(), lambda: busy, lambda: None)
    assert "HTTP 503" in caught.value.reason and "-n" in caught.value.remedy


def test_refusals_name_what_was_refused() -> None:
    refusals = Refusals()
    refusals.count(error_reply(b"u" * 16, ErrorType.UNKNOWN, "no backend"))
    with ends(NotJudged, match=r"type UNKNOWN \(error_message 'no backend'\)"):
        refusals.require_judged("X")
    refusals.count(ServerToAgent())
    refusals.require_judged("X")


# --- access: credentials and size limit -------------------------------------------


def test_auth_rule_without_credentials_on_a_target_serving_anyone_is_not_applicable() -> None:
    opamp = clients(OpAMPLogic())
    with ends(NotApplicable) as caught:
        test_server_access.test_missing_or_wrong_credentials_get_401(opamp, HTTP)
    assert "was served" in caught.value.evidence
    assert opamp.opened == [(HTTP, [])]  # the probe carried no header at all


@pytest.mark.parametrize("headers", [[], [("X-Tenant", "a")]])
def test_auth_rule_without_credentials_on_a_refusing_target_is_not_judged(
    headers: list[tuple[str, str]],
) -> None:
    with ends(NotJudged) as caught:
        test_server_access.test_missing_or_wrong_credentials_get_401(
            clients(RefusesEverything(), headers), HTTP
        )
    assert caught.value.remedy.startswith('--target-header "Authorization: ')
    assert "error_response" in caught.value.reason


@dataclasses.dataclass
class FakeSession:
    """What the SRV-413 and stateless tests read of the session."""

    targets: list[Any]
    max_message_bytes: int = 64 * 1024 * 1024
    size_limit_known: bool = False
    enrollment_token: str | None = None

    @property
    def primary(self) -> Any:
        return self.targets[0]

    def require_transport(self, target: Any, transport: Transport) -> None:
        pass


def test_size_limit_rule_in_the_quick_profile_without_a_limit_is_not_judged() -> None:
    session = FakeSession([parse_target("http://127.0.0.1:9")])
    with ends(NotJudged) as caught:
        test_server_access.test_request_over_the_size_limit_gets_413(None, session)  # type: ignore[arg-type]
    assert "--max-message-bytes=N" in caught.value.remedy
    assert "--profile=nightly" in caught.value.remedy


def test_stateless_rule_with_one_target_is_not_judged() -> None:
    session = FakeSession([parse_target("http://127.0.0.1:9")])
    with ends(NotJudged) as caught:
        test_server_stateless._instances(None, session)  # type: ignore[arg-type]
    assert "two or more --target" in caught.value.remedy


# --- hostile input and the WebSocket header -------------------------------------------


class Dropping:
    """A driver whose every exchange (or every one with a non-UUID uid) is a dropped connection."""

    transport = "http"

    def __init__(self, only_odd_uids: bool) -> None:
        self.only_odd_uids = only_odd_uids

    def send(self, msg: AgentToServer, **_: Any) -> Exchange:
        attempt = Attempt("http", msg, msg.ByteSize())
        is_v7 = msg.instance_uid[6] >> 4 == 7
        if self.only_odd_uids and is_v7:
            return attempt.finish(status=200, reply=ServerToAgent(instance_uid=msg.instance_uid))
        return attempt.finish(problem=Problem.DISCONNECTED, detail="reset by peer")

    def close(self) -> None:
        pass


def test_when_every_request_fails_the_finding_does_not_blame_the_uid() -> None:
    with pytest.raises(Violation) as caught:
        hostile._any_sixteen_bytes_are_a_uid(Dropping(only_odd_uids=False))  # type: ignore[arg-type]
    assert caught.value.message.startswith("every request failed")
    assert "is not a UUID got" not in caught.value.message
    with pytest.raises(Violation) as odd:
        hostile._any_sixteen_bytes_are_a_uid(Dropping(only_odd_uids=True))  # type: ignore[arg-type]
    assert odd.value.message.startswith("a valid message whose 16-byte instance_uid is not a UUID")


def _ws_app(answer: Callable[[int, bytes], bytes | None], received: list[int]) -> web.Application:
    """A WebSocket-only OpAMP endpoint: ``answer(header, payload)`` says what to send back."""

    async def endpoint(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        async for message in ws:
            if message.type is not WSMsgType.BINARY:
                break
            framed = ws_unframe(message.data)
            received.append(framed.header)
            out = answer(framed.header, framed.payload)
            if out is not None:
                await ws.send_bytes(out)
        return ws

    app = web.Application()
    app.router.add_get("/v1/opamp", endpoint)
    return app


@pytest.fixture
def short_timeout() -> Iterator[float]:
    before = profiles.active()
    profiles.activate(dataclasses.replace(before, request_timeout=0.5))
    try:
        yield 0.5
    finally:
        profiles.activate(before)


class WsOnly:
    """The ``opamp`` fixture reduced to what the SRV-WS-HEADER test uses."""

    def __init__(self, url: str, timeout: float) -> None:
        self.driver = WsDriver(url, timeout=timeout)

    def ws(self) -> WsDriver:
        return self.driver


def test_websocket_target_that_never_answers_leaves_the_header_rule_not_judged(
    short_timeout: float,
) -> None:
    received: list[int] = []
    with AiohttpServer(_ws_app(lambda header, payload: None, received)) as server:
        url = server.url("/v1/opamp", "ws")
        session = FakeSession([parse_target(url)])
        opamp = WsOnly(url, short_timeout)
        try:
            with ends(NotJudged, match="did not answer a well-formed message"):
                hostile.test_websocket_header_other_than_zero_is_malformed(opamp, session)  # type: ignore[arg-type]
        finally:
            opamp.driver.close()
    # One wait, for the header-0 control: no header other than 0 was sent at all.
    assert received == [0]


def _answers_header_zero_only(header: int, payload: bytes) -> bytes | None:
    if header != 0:
        return None  # dropped in silence: treated as malformed
    msg = parse_agent_to_server(payload)
    reply = ServerToAgent(instance_uid=msg.instance_uid, capabilities=ServerCap.ACCEPTS_STATUS)
    return ws_frame(reply.SerializeToString())


def test_websocket_header_waits_are_bounded_together(
    short_timeout: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A target silent on every non-zero header costs at most the bound, not a wait each."""
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    waits: list[float] = []

    class Silent:
        transport = "ws"

        def send(
            self, msg: AgentToServer, *, header: int = 0, timeout: float | None = None
        ) -> Exchange:
            attempt = Attempt("ws", msg, msg.ByteSize())
            if header == 0:
                reply = ServerToAgent(instance_uid=msg.instance_uid, capabilities=1)
                return attempt.finish(status=101, reply=reply)
            wait = short_timeout if timeout is None else timeout
            waits.append(wait)
            clock[0] += wait
            return attempt.finish(status=101, problem=Problem.TIMEOUT, detail="silent")

        def close(self) -> None:
            pass

    class Opamp:
        def ws(self) -> Silent:
            return Silent()

    session = FakeSession([parse_target("ws://127.0.0.1:9/v1/opamp")])
    hostile.test_websocket_header_other_than_zero_is_malformed(Opamp(), session)  # type: ignore[arg-type]
    assert sum(waits) <= hostile.WS_HEADER_WAIT_TIMEOUTS * short_timeout
    assert len(waits) < len(hostile.WS_HEADERS)


def test_websocket_target_answering_header_zero_only_holds_the_header_rule(
    short_timeout: float,
) -> None:
    received: list[int] = []
    with AiohttpServer(_ws_app(_answers_header_zero_only, received)) as server:
        url = server.url("/v1/opamp", "ws")
        opamp = WsOnly(url, short_timeout)
        try:
            hostile.test_websocket_header_other_than_zero_is_malformed(
                opamp,  # type: ignore[arg-type]
                FakeSession([parse_target(url)]),  # type: ignore[arg-type]
            )
        finally:
            opamp.driver.close()
    assert received[0] == 0 and len(received) >= 2


# --- Fleet API ---------------------------------------------------------------------


def _status_404_app() -> web.Application:
    return web.Application()  # every path, /api/status included, gets 404


def test_target_without_fleet_api_makes_fleet_rules_not_applicable() -> None:
    with AiohttpServer(_status_404_app()) as server:
        client = FleetClient(server.url(""), timeout=2.0)
        try:
            absent = test_fleet_server._absent_reason(client, FakeSession([]))  # type: ignore[arg-type]
        finally:
            client.close()
    assert isinstance(absent, NotApplicable)
    assert "HTTP 404" in absent.evidence and "/api/status" in absent.evidence


def test_fleet_rules_needing_an_agent_without_token_are_not_judged() -> None:
    fleet = test_fleet_server.Fleet(
        FleetClient("http://127.0.0.1:9", timeout=1.0), None, None, "agent"
    )
    try:
        with ends(NotJudged) as caught:
            test_fleet_server.test_enrolment_succeeds_and_its_key_checks_in(fleet)
        assert caught.value.remedy.startswith("--enrollment-token=")
        with ends(NotJudged, match="no --enrollment-token"):
            fleet.enrolled(FleetTranscript())
    finally:
        fleet.client.close()
