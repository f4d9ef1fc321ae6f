"""Hostile input (SRV-NO-5XX, SRV-BADREQ) and the WebSocket header rule (SRV-WS-HEADER).

Every generated bad request must get an answer that is not a 5xx, a hang
or a dropped connection, and the server must still serve a new agent right
after. Malformed messages should be refused with a ServerToAgent carrying
``error_response`` BAD_REQUEST; that is counted over the whole run.
"""

from __future__ import annotations

import os
import time

import pytest

from conformance.checks import (
    ShouldTally,
    Transcript,
    error_type_name,
    refused_as_malformed,
    retry_throttled,
)
from conformance.drivers import Exchange, HttpDriver, Problem, WsDriver
from conformance.hostile import UNFRAMED_BODIES, BadInput, Kind, bad_inputs
from conformance.messages import full_status, new_uid
from conformance.outcomes import not_judged
from conformance.plugin.fixtures import Clients
from conformance.plugin.targets import TargetSession
from conformance.profiles import active
from conformance.properties import conformance_property
from conformance.target import Transport
from conformance.verdicts import Findings, Violation
from conformance.wire import ErrorType, ws_frame

#: Problems that break SRV-NO-5XX whatever the input was.
BROKEN = {
    Problem.TIMEOUT: "no answer in time",
    Problem.DISCONNECTED: "connection dropped",
    Problem.CONNECT: "could not connect",
}


def _send_bad(driver: HttpDriver | WsDriver, bad: BadInput) -> Exchange:
    if isinstance(driver, HttpDriver):
        headers = {"Content-Encoding": "gzip"} if bad.gzip_claimed else {}
        return driver.send_raw(bad.body, content_type=bad.content_type, headers=headers)
    return driver.send_raw(bad.body if bad.kind is Kind.UNFRAMED else ws_frame(bad.body))


def _breakage(exchange: Exchange) -> str | None:
    """How an exchange breaks SRV-NO-5XX, or ``None``."""
    if exchange.problem in BROKEN:
        detail = f" ({exchange.detail})" if exchange.detail else ""
        return BROKEN[exchange.problem] + detail
    if exchange.status is not None and exchange.status >= 500:
        return f"HTTP {exchange.status}"
    return None


#: HTTP statuses that tell a client its credential failed (RFC 9110 sections 15.5.2 and
#: 15.5.4). The suite's requests carry the session's credential, which the target accepts
#: for well-formed messages: blaming it for a malformed body misleads the agent.
CREDENTIAL_STATUSES = (401, 403)


def _not_bad_request(exchange: Exchange) -> str | None:
    """How the answer to a malformed message misses BAD_REQUEST, or ``None``."""
    if exchange.status in CREDENTIAL_STATUSES:
        return (
            f"HTTP {exchange.status}, which says the credential failed, not the message"
            " (suite rule)"
        )
    reply = exchange.reply
    if reply is not None and reply.HasField("error_response"):
        kind = reply.error_response.type
        return None if kind == ErrorType.BAD_REQUEST else f"error_response of type {kind}"
    if reply is not None:
        return f"answered as a normal message (HTTP {exchange.status})"
    status = f"HTTP {exchange.status}" if exchange.status != 101 else "WebSocket"
    if exchange.problem is not None:
        return f"{status}, {exchange.problem.value}"
    return f"{status} without a ServerToAgent"


def _still_serves(transcript: Transcript, driver: HttpDriver | WsDriver, bad: BadInput) -> None:
    msg = full_status(new_uid(), 0)
    after = retry_throttled(transcript, lambda: driver.send(msg), driver.close)
    transcript.add(after)
    if after.reply is None or (after.status is not None and after.status >= 500):
        why = _breakage(after) or (after.problem.value if after.problem else f"HTTP {after.status}")
        raise Violation(
            "SRV-NO-5XX",
            f"after {bad.label}, a valid message from a new agent got {why}",
            transcript.render(),
        )
    malformed = refused_as_malformed(after)
    if malformed is not None:
        raise Violation("SRV-REPLY", f"after {bad.label}, {malformed}", transcript.render())


@pytest.mark.requirement("SRV-NO-5XX", "SRV-BADREQ")
def test_hostile_input_is_survived_and_refused(
    opamp: Clients, transport: Transport, conformance_session: TargetSession
) -> None:
    """No 5xx, hang or drop for any bad body, service goes on; malformed ones get BAD_REQUEST.

    Over WebSocket, every message whose OpAMP header cannot be read (empty, a
    varint cut short or too long) is sent too, before the generated ones: they
    are few, and a drawn sample could miss them.
    """
    tally = ShouldTally("SRV-BADREQ", "malformed messages answered otherwise than BAD_REQUEST")
    driver = opamp.open(transport)
    websocket = transport is Transport.WS
    limit = conformance_session.max_message_bytes

    def judge(bad: BadInput) -> None:
        bad = bad.with_fresh_uid()
        transcript = Transcript()
        transcript.note(f"    input: {bad!r}")
        exchange = retry_throttled(transcript, lambda: _send_bad(driver, bad), driver.close)
        transcript.add(exchange)
        broken = _breakage(exchange)
        malformed = bad.malformation()
        if broken is not None and websocket and malformed is not None:
            # WebSocket has no request/response pairing: a server may drop a
            # message it cannot read, or close the socket on it. That misses
            # BAD_REQUEST (SHOULD); the MUST is that service goes on.
            tally.count(broken, transcript.render())
            driver.close()
        elif broken is not None:
            raise Violation("SRV-NO-5XX", f"{bad.label}: {broken}", transcript.render())
        elif malformed is not None:
            tally.count(_not_bad_request(exchange), transcript.render())
        _still_serves(transcript, driver, bad)

    @conformance_property(
        time_budget=active().test_budget,
        bad=bad_inputs(max_bytes=limit, websocket=websocket),
    )
    def attack(bad: BadInput) -> None:
        judge(bad)

    _any_sixteen_bytes_are_a_uid(driver)
    if websocket:
        for body in UNFRAMED_BODIES:
            judge(BadInput(Kind.UNFRAMED, body))
    attack()
    Findings(tally.violations()).raise_if_any()


def not_a_uuid() -> bytes:
    """Fresh 16 bytes that are no UUID of any version (version nibble 0, variant bits 00).

    The spec asks for 16 bytes and only recommends (SHOULD) that agents use a
    UUID v7. Fresh each time: a repeated uid and sequence_num is a duplicate.
    """
    raw = bytearray(os.urandom(16))
    raw[6] &= 0x0F
    raw[8] &= 0x3F
    return bytes(raw)


def _any_sixteen_bytes_are_a_uid(driver: HttpDriver | WsDriver) -> None:
    """A valid message whose uid is no UUID is served like any other.

    When it breaks, a second valid message with an ordinary (UUID v7) uid tells
    what broke: only the odd uid, or every request (then the finding says so,
    and does not blame the uid).
    """
    uid = not_a_uuid()
    transcript = Transcript()
    transcript.note(f"    #1: a valid message whose instance_uid is {uid.hex()} (not a UUID)")
    exchange = transcript.add(driver.send(full_status(uid, 0)))
    broken = _breakage(exchange)
    if broken is None:
        return
    driver.close()
    control = transcript.add(driver.send(full_status(new_uid(), 0)))
    transcript.note("    #2: the same message from an agent whose instance_uid is a UUID v7")
    also = _breakage(control)
    if also is not None:
        raise Violation(
            "SRV-NO-5XX",
            f"every request failed: valid messages got {broken}, whatever their instance_uid"
            f" (the last one: {also}); the target answered no request over {driver.transport}",
            transcript.render(),
        )
    raise Violation(
        "SRV-NO-5XX",
        f"a valid message whose 16-byte instance_uid is not a UUID got {broken}, while the same"
        " message with a UUID v7 uid was answered (any 16 bytes are a valid instance_uid;"
        " UUID v7 is a SHOULD for agents)",
        transcript.render(),
    )


FIXED_UID = b"\x42" * 16
#: Header values other than 0: small, the largest one-byte varint, and multi-byte ones.
WS_HEADERS = (1, 2, 0x7F, 0x80, 0x3FFF)
#: Bound on the waits for the non-zero headers, in request timeouts: a server that
#: drops each malformed message silently costs a wait each, never more than this.
WS_HEADER_WAIT_TIMEOUTS = 3.0


def _ws_control(ws: WsDriver) -> Exchange:
    """A well-formed message framed with header 0 from a new agent; ends the test unless served.

    Silence, or an error_response, to a valid message would make the verdict on the
    non-zero headers vacuous: the target then treats every message alike.
    """
    transcript = Transcript()
    msg = full_status(new_uid(), 0)
    control = transcript.add(retry_throttled(transcript, lambda: ws.send(msg), ws.close))
    ws.close()
    reply = control.reply
    if reply is None:
        not_judged(
            "the target did not answer a well-formed message framed with header 0"
            f" ({control.summary()}), so its silence on other headers says nothing"
            " (SRV-REPLY judges the silence itself)",
            "check that the target answers WebSocket messages within --request-timeout (or"
            " raise it), and run again",
        )
    malformed = refused_as_malformed(control)
    if malformed is not None:
        raise Violation("SRV-REPLY", malformed, transcript.render())
    if reply.HasField("error_response"):
        kind = error_type_name(reply.error_response.type)
        not_judged(
            f"the target refused a well-formed message framed with header 0 too (error_response"
            f" type {kind}: {reply.error_response.error_message!r}), so a refusal of other"
            " headers shows no difference",
            "find out why the target refuses the suite's well-formed agents (its"
            " error_message, its logs), fix that, and run again",
        )
    return control


@pytest.mark.requirement("SRV-WS-HEADER")
def test_websocket_header_other_than_zero_is_malformed(
    opamp: Clients, conformance_session: TargetSession
) -> None:
    """A message framed with header 1 (or more) is refused, not answered as a normal message.

    A well-formed message framed with header 0 goes first: only a target that
    serves it can show that it treats the others as malformed. The waits for the
    other headers are bounded together (a target may drop each in silence).
    """
    conformance_session.require_transport(conformance_session.primary, Transport.WS)
    ws = opamp.ws()
    _ws_control(ws)
    timeout = active().request_timeout
    deadline = time.monotonic() + WS_HEADER_WAIT_TIMEOUTS * timeout
    tally = ShouldTally("SRV-WS-HEADER", "messages with a non-zero header answered as valid")
    for header in WS_HEADERS:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        transcript = Transcript()
        transcript.note(f"    message framed with header {header}")
        # A fixed uid: the bytes after a multi-byte header then always read the same.
        exchange = ws.send(full_status(FIXED_UID, 0), header=header, timeout=min(timeout, left))
        transcript.add(exchange)
        reply = exchange.reply
        accepted = reply is not None and not reply.HasField("error_response")
        tally.count(f"header {header} accepted" if accepted else None, transcript.render())
        ws.close()  # a server may close the socket on a malformed message: start afresh
    Findings(tally.violations()).raise_if_any()
