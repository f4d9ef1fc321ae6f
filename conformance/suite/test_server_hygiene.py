"""Server protocol hygiene (rules section 4): replies, uid echo, capabilities, errors, gzip."""

from __future__ import annotations

import functools

import pytest
from hypothesis import strategies as st

from conformance.checks import (
    Refusals,
    ShouldTally,
    Transcript,
    converse,
    fields_set_beside_error,
    retry_throttled,
)
from conformance.drivers import Exchange, HttpDriver, Problem, WsDriver
from conformance.messages import full_status, goodbye, heartbeat, new_uid
from conformance.outcomes import not_applicable, not_judged
from conformance.plugin.fixtures import Clients
from conformance.plugin.targets import TargetSession
from conformance.properties import conformance_property
from conformance.strategies import agent_capabilities
from conformance.target import Transport
from conformance.verdicts import Findings, require
from conformance.wire import AgentCap, AgentFlag, AgentToServer, ServerCap, ServerToAgent

#: One step an agent may take: a full message, a heartbeat, or a repeat of the last one.
steps = st.lists(st.sampled_from(["full", "heartbeat", "duplicate"]), min_size=1, max_size=6)


def _message(step: str, uid: bytes, seq: int, caps: int) -> AgentToServer:
    return full_status(uid, seq, caps) if step == "full" else heartbeat(uid, seq, caps)


def _send(
    transcript: Transcript, driver: HttpDriver | WsDriver, msg: AgentToServer
) -> ServerToAgent:
    """One judged exchange (SRV-REPLY), honouring throttling answers."""
    return converse(transcript, lambda: driver.send(msg), driver.close)


@pytest.mark.requirement("SRV-REPLY")
def test_every_message_gets_one_reply(opamp: Clients, transport: Transport) -> None:
    """Each AgentToServer, a duplicate too, is answered by one decodable ServerToAgent."""

    @conformance_property(caps=agent_capabilities(), plan=steps)
    def conversation(caps: int, plan: list[str]) -> None:
        transcript = Transcript()
        uid, seq = new_uid(), 0
        last: AgentToServer | None = None
        with opamp.open(transport) as driver:  # one connection per agent
            for step in plan:
                if step == "duplicate" and last is not None:
                    msg = last
                else:
                    msg = _message(step, uid, seq, caps)
                    seq += 1
                _send(transcript, driver, msg)
                last = msg

    conversation()


@pytest.mark.requirement("SRV-UID-ECHO")
def test_reply_echoes_instance_uid(opamp: Clients, transport: Transport) -> None:
    """ServerToAgent.instance_uid is the uid of the agent that sent the message."""

    @conformance_property(caps=agent_capabilities(), first=st.sampled_from(["full", "heartbeat"]))
    def conversation(caps: int, first: str) -> None:
        transcript = Transcript()
        uid = new_uid()
        with opamp.open(transport) as driver:
            for seq, step in enumerate([first, "heartbeat"]):
                reply = _send(transcript, driver, _message(step, uid, seq, caps))
                require(
                    "SRV-UID-ECHO",
                    reply.instance_uid == uid,
                    f"reply instance_uid {reply.instance_uid.hex() or '<empty>'}"
                    f" != agent's {uid.hex()}",
                    transcript.render(),
                )
                # A server may give the agent a new uid; the agent then uses it.
                uid = reply.agent_identification.new_instance_uid or uid

    conversation()


@pytest.mark.requirement("SRV-CAPS-FIRST")
def test_first_reply_declares_capabilities(opamp: Clients, transport: Transport) -> None:
    """The first reply to a new agent sets capabilities with AcceptsStatus and defined bits only.

    A first reply carrying error_response must not carry capabilities
    (SRV-ERR-EXCL), so it is not judged here; a run in which every first
    contact was refused judged nothing and ends *not judged*.
    """
    refusals = Refusals()

    @conformance_property(caps=agent_capabilities(), first=st.sampled_from(["full", "heartbeat"]))
    def first_contact(caps: int, first: str) -> None:
        with opamp.open(transport) as driver:
            _check_first_reply(driver, caps, first, refusals)

    first_contact()
    refusals.require_judged("SRV-CAPS-FIRST (a first reply without error_response)")


#: New agents tried when the first reply is an error_response (which must not
#: carry capabilities, SRV-ERR-EXCL) before the example is left unjudged.
FIRST_CONTACT_TRIES = 3


def _check_first_reply(
    driver: HttpDriver | WsDriver, caps: int, first: str, refusals: Refusals
) -> None:
    transcript = Transcript()
    for attempt in range(FIRST_CONTACT_TRIES):
        msg = _message(first if attempt == 0 else "full", new_uid(), 0, caps)
        reply = _send(transcript, driver, msg)
        if refusals.count(reply):
            break
        transcript.note("    first reply is an error_response; a new agent tries again")
    else:
        return  # every first contact of this example refused: counted, not judged
    require(
        "SRV-CAPS-FIRST",
        bool(reply.capabilities & ServerCap.ACCEPTS_STATUS),
        f"capabilities {reply.capabilities:#x} lack AcceptsStatus (0x1)",
        transcript.render(),
    )
    require(
        "SRV-CAPS-FIRST",
        not reply.capabilities & ~ServerCap.ALL,
        f"capabilities {reply.capabilities:#x} set undefined bits"
        f" {reply.capabilities & ~ServerCap.ALL:#x}",
        transcript.render(),
    )


#: Agents that ask for a server-generated uid, per transport. A generator that
#: leaves the variant bits random gets them right one time in four: eight uids
#: let that through once in 65536 runs.
UID_REQUESTS = 8


def uuid7_fault(uid: bytes) -> str | None:
    """How 16 bytes fail to be a UUID v7 (RFC 9562: version nibble 7, variant 10), or ``None``."""
    version = uid[6] >> 4
    if version != 7:
        return f"version nibble {version}, not 7"
    if uid[8] & 0xC0 != 0x80:
        return f"variant bits {uid[8] >> 6:02b}, not 10 (RFC 9562)"
    return None


def _ask_for_uid(
    transcript: Transcript, driver: HttpDriver | WsDriver, later: bool
) -> tuple[bytes, ServerToAgent]:
    """One new agent sets RequestInstanceUid, in its first message or (``later``) its second.

    The uid the agent holds when it asks comes back with the reply: a uid the
    server assigned unasked to the first message is adopted first, as an agent must.
    """
    uid, seq = new_uid(), 0
    if later:
        first = _send(transcript, driver, full_status(uid, seq))
        assigned = first.agent_identification.new_instance_uid
        uid = assigned if len(assigned) == 16 else uid
        seq += 1
    msg = full_status(uid, seq)
    msg.flags |= AgentFlag.REQUEST_INSTANCE_UID
    where = "second message" if later else "first message"
    transcript.note(f"    RequestInstanceUid set in the agent's {where} (uid {uid.hex()})")
    return uid, _send(transcript, driver, msg)


@pytest.mark.requirement("SRV-NEW-UID", "SRV-NEW-UID-LEN", "SRV-NEW-UID-V7")
def test_requested_instance_uid_is_assigned(opamp: Clients, transport: Transport) -> None:
    """RequestInstanceUid is answered with a fresh 16-byte new_instance_uid, a UUID v7.

    Spec l.773: with the flag the agent asks the server to generate a new
    instance_uid, "which will be sent back in ServerToAgent" (no keyword: SHOULD
    here); l.995: that new_instance_uid MUST be 16 bytes and SHOULD be a UUID v7. Half the agents
    ask at first contact, half in a later message. A reply carrying
    error_response may carry nothing else (SRV-ERR-EXCL): it is counted, not
    judged, and a run where every request was refused ends *not judged*.
    """
    refusals = Refusals()
    answered = ShouldTally("SRV-NEW-UID", "replies to RequestInstanceUid")
    tally = ShouldTally("SRV-NEW-UID-V7", "new_instance_uid values assigned")
    for n in range(UID_REQUESTS):
        transcript = Transcript()
        with opamp.open(transport) as driver:
            uid, reply = _ask_for_uid(transcript, driver, later=n % 2 == 1)
        if not refusals.count(reply):
            continue
        assigned = reply.agent_identification.new_instance_uid
        if assigned:
            transcript.note(f"    assigned new_instance_uid {assigned.hex()}")
            require(
                "SRV-NEW-UID-LEN",
                len(assigned) == 16,
                f"new_instance_uid {assigned.hex()} is {len(assigned)} bytes, not 16",
                transcript.render(),
            )
            tally.count(uuid7_fault(assigned), transcript.render())
        missing = None
        if not assigned:
            missing = "no agent_identification.new_instance_uid in the reply"
        elif assigned == uid:
            missing = "the new_instance_uid is the uid the agent asked to replace"
        answered.count(missing, transcript.render())
    refusals.require_judged("SRV-NEW-UID (a reply to RequestInstanceUid without error_response)")
    Findings(answered.violations() + tally.violations()).raise_if_any()


def _error_probes(uid: bytes) -> list[tuple[str, AgentToServer]]:
    """Messages a server is likely to refuse with an error_response."""
    return [
        ("instance_uid of 5 bytes", heartbeat(b"\x01" * 5, 0)),
        ("instance_uid empty", heartbeat(b"", 0)),
        ("agent_disconnect from an unknown agent", goodbye(uid, 7)),
        ("capabilities 0", AgentToServer(instance_uid=new_uid(), sequence_num=0)),
    ]


@pytest.mark.requirement("SRV-ERR-EXCL")
def test_error_response_stands_alone(
    opamp: Clients, transport: Transport, conformance_session: TargetSession
) -> None:
    """A reply carrying error_response sets none of fields 3 to 11.

    Every error_response that comes back is judged, a throttling one
    (UNAVAILABLE) too. Only a probe answered by a normal ServerToAgent (or by
    an HTTP 4xx without a body) shows that the target did not answer it with
    error_response: when no probe got one and every probe was answered so,
    the rule is not applicable; when a probe got anything else (a 5xx, a
    dropped connection, silence, a body that is not a ServerToAgent), the
    error_response may have been lost on the way, and the rule is not judged.
    """
    transcript = Transcript()
    errors = 0
    plain: list[str] = []
    unclear: list[str] = []
    with opamp.open(transport) as driver:
        for label, msg in _error_probes(new_uid()):
            start = len(transcript.exchanges)
            last = retry_throttled(transcript, functools.partial(driver.send, msg), driver.close)
            transcript.add(last)
            for exchange in transcript.exchanges[start:]:
                reply = exchange.reply
                if reply is None or not reply.HasField("error_response"):
                    continue
                errors += 1
                extra = fields_set_beside_error(reply)
                require(
                    "SRV-ERR-EXCL",
                    not extra,
                    f"error_response to '{label}' came with {', '.join(extra)}",
                    transcript.render(),
                )
            if last.reply is not None and last.reply.HasField("error_response"):
                continue
            transcript.note(f"probe '{label}': no error_response")
            (plain if _shows_no_error(last) else unclear).append(f"{label}: {_outcome(last)}")
    if errors:
        return
    if unclear:
        not_judged(
            f"none of the error probes got an error_response, and {len(unclear)} of"
            f" {len(unclear) + len(plain)} got no normal reply either (an error_response may"
            " have been lost on the way), so whether the target answers with error_response"
            " is unknown: " + "; ".join(unclear),
            "check that the target answers within --request-timeout (or raise it) and that"
            " nothing between the suite and the target (a proxy, a load balancer) fails or"
            " drops requests, lower the load (fewer -n workers, e.g. -n 1), and run again",
        )
    not_applicable(
        "the target answered none of the error probes with error_response: it showed no"
        " error_response whose exclusivity could be judged",
        "; ".join(plain),
    )


def _shows_no_error(exchange: Exchange) -> bool:
    """The target plainly answered without error_response.

    A decoded ServerToAgent with a success status, or an HTTP 4xx without a
    body (a refusal at the HTTP level). Anything else (5xx, a proxy's page,
    a dropped connection, silence, an undecodable body) proves nothing.
    """
    if exchange.reply is not None:
        return (
            exchange.problem is None
            and exchange.status in (101, 200)
            and not exchange.reply.HasField("error_response")
        )
    return (
        exchange.status is not None
        and 400 <= exchange.status < 500
        and exchange.reply_bytes == 0
        and exchange.problem in (None, Problem.EMPTY)
    )


#: Ways of sending the same body that a server must accept like the plain one.
#: (name, gzip, chunked).
BODY_FORMS: tuple[tuple[str, bool, bool], ...] = (
    ("gzip", True, False),
    ("chunked", False, True),
    ("gzip+chunked", True, True),
)


@pytest.mark.requirement("SRV-GZIP")
def test_gzip_and_chunked_bodies_accepted_like_plain(
    opamp: Clients, conformance_session: TargetSession
) -> None:
    """The same conversation, gzip-compressed or chunked, is accepted exactly as in plain bytes."""
    http = _http_or_skip(opamp, conformance_session, "gzip and chunked request bodies")
    plain_refusals = Refusals()

    @conformance_property(caps=agent_capabilities(), plan=steps)
    def conversation(caps: int, plan: list[str]) -> None:
        _compare_forms_with_plain(http, caps, plan, plain_refusals)

    conversation()
    # Refused alike proves nothing about acceptance: some plain body must have been accepted.
    plain_refusals.require_judged("SRV-GZIP (a plain body accepted to compare with)")


#: New agents whose plain-HTTP replies SRV-HTTP-200 looks at, two messages each.
STATUS_AGENTS = 3


@pytest.mark.requirement("SRV-HTTP-200")
def test_http_replies_come_with_200(opamp: Clients, conformance_session: TargetSession) -> None:
    """An accepted ServerToAgent over plain HTTP comes with 200, not another 2xx.

    The spec names no status for a reply; opamp-go's HTTP client (its
    ``httpsender.go``) counts only 200 as connected and drops the body of any
    other status as "invalid response from server", so an agent built on it
    never sees a 201 or 202 reply. A suite rule, as SHOULD. Replies carrying
    error_response are counted, not judged.
    """
    http = _http_or_skip(opamp, conformance_session, "plain-HTTP reply statuses")
    refusals = Refusals()
    tally = ShouldTally("SRV-HTTP-200", "accepted plain-HTTP replies")
    for _ in range(STATUS_AGENTS):
        transcript = Transcript()
        uid = new_uid()
        for msg in (full_status(uid, 0), heartbeat(uid, 1)):
            reply = _send(transcript, http, msg)
            if not refusals.count(reply):
                continue
            status = transcript.exchanges[-1].status
            tally.count(None if status == 200 else f"HTTP {status}", transcript.render())
    refusals.require_judged("SRV-HTTP-200 (a reply without error_response)")
    Findings(tally.violations()).raise_if_any()


def _http_or_skip(opamp: Clients, session: TargetSession, what: str) -> HttpDriver:
    session.require_transport(session.primary, Transport.HTTP)
    return opamp.http()


def _compare_forms_with_plain(
    http: HttpDriver, caps: int, plan: list[str], plain_refusals: Refusals
) -> None:
    transcript = Transcript()
    plain_uid = new_uid()
    form_uids = {name: new_uid() for name, _, _ in BODY_FORMS}
    for seq, step in enumerate(plan):
        plain = _send(transcript, http, _message(step, plain_uid, seq, caps))
        plain_exchange = transcript.exchanges[-1]
        plain_refusals.count(plain)
        for name, gzip, chunked in BODY_FORMS:
            msg = _message(step, form_uids[name], seq, caps)
            send = functools.partial(http.send, msg, gzip=gzip, chunked=chunked)
            exchange = retry_throttled(transcript, send, http.close)
            transcript.add(exchange)
            require(
                "SRV-GZIP",
                exchange.reply is not None and exchange.status == plain_exchange.status,
                f"{name} body answered {_outcome(exchange)}; the plain body got"
                f" HTTP {plain_exchange.status}",
                transcript.render(),
            )
            assert exchange.reply is not None
            # Flags are the drift rules' business (they depend on per-agent state);
            # here only acceptance counts: same error outcome as the plain body.
            require(
                "SRV-GZIP",
                exchange.reply.HasField("error_response") == plain.HasField("error_response")
                and exchange.reply.error_response.type == plain.error_response.type,
                f"{name} and plain bodies were answered differently: error_response"
                f" {_error_text(exchange.reply)} vs {_error_text(plain)}",
                transcript.render(),
            )


def _outcome(exchange: Exchange) -> str:
    text = f"HTTP {exchange.status}" if exchange.status is not None else "nothing"
    if exchange.problem is not None:
        text += f", {exchange.problem.value}"
    return text + (f" ({exchange.detail})" if exchange.detail else "")


def _error_text(reply: ServerToAgent) -> str:
    if not reply.HasField("error_response"):
        return "absent"
    err = reply.error_response
    return f"type {err.type} {err.error_message!r}"


#: Replies smaller than this are not judged: compression middleware commonly
#: leaves tiny bodies alone (Go's gzhttp, nginx gzip_min_length).
GZIP_RESP_MIN_BYTES = 1024


@pytest.mark.requirement("SRV-GZIP-RESP")
def test_reply_compressed_when_client_accepts_gzip(
    opamp: Clients, conformance_session: TargetSession
) -> None:
    """With Accept-Encoding: gzip, a reply of 1 KiB or more comes gzip-compressed."""
    http = _http_or_skip(opamp, conformance_session, "compressed responses")
    judged = 0
    refusals = Refusals()

    @conformance_property(caps=agent_capabilities(), plan=steps)
    def conversation(caps: int, plan: list[str]) -> None:
        nonlocal judged
        transcript = Transcript()
        uid = new_uid()
        caps |= AgentCap.ACCEPTS_REMOTE_CONFIG  # a config offer makes replies worth compressing
        for seq, step in enumerate(plan):
            reply = _send(transcript, http, _message(step, uid, seq, caps))
            refusals.count(reply)
            exchange = transcript.exchanges[-1]
            if exchange.reply_bytes < GZIP_RESP_MIN_BYTES:
                continue
            judged += 1
            encoding = (exchange.header("Content-Encoding") or "identity").strip().lower()
            require(
                "SRV-GZIP-RESP",
                encoding == "gzip",
                f"reply of {exchange.reply_bytes} B sent with Content-Encoding {encoding!r}"
                " although the request carried Accept-Encoding: gzip",
                transcript.render(),
            )

    conversation()
    if judged == 0:
        refusals.require_judged("SRV-GZIP-RESP")
        not_judged(
            f"no reply of {GZIP_RESP_MIN_BYTES} B or more came back (replies smaller than that"
            " are not judged): compression could not be observed",
            "configure the target to offer a remote config of 1 KiB or more to new agents that"
            " accept one (AcceptsRemoteConfig), so that its replies are worth compressing,"
            " and run again",
        )
