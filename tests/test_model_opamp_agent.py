"""The OpAMP agent oracle (conformance/model/opamp_agent.py) on hand-made records."""

from __future__ import annotations

import uuid

from conformance.messages import full_status, heartbeat, new_uid
from conformance.model.opamp_agent import (
    ACK,
    Received,
    Reply,
    check_capabilities,
    check_content_type,
    check_first_full,
    check_full_on_flag,
    check_heartbeat,
    check_new_uid,
    check_one_in_flight,
    check_sequence,
    check_uid,
    check_uid_header,
    quick_resends,
    repeats,
    unanswered,
)
from conformance.wire import CONTENT_TYPE, AgentCap, AgentToServer, ServerToAgent

CAPS = AgentCap.REPORTS_STATUS


def rec(
    msg: AgentToServer,
    at: float,
    reply: Reply = ACK,
    *,
    transport: str = "http",
    connection: int = 0,
    headers: tuple[tuple[str, str], ...] | None = None,
    in_flight: int = 1,
    sent: ServerToAgent | None = None,
) -> Received:
    if headers is None:
        headers = (
            ("Content-Type", CONTENT_TYPE),
            ("OpAMP-Instance-UID", str(uuid.UUID(bytes=msg.instance_uid))),
        )
    return Received(
        at,
        transport,
        connection,
        headers,
        msg,
        "",
        reply,
        in_flight,
        msg.SerializeToString(),
        sent if sent is not None else ServerToAgent(instance_uid=msg.instance_uid),
    )


def conversation(uid: bytes) -> list[Received]:
    return [rec(full_status(uid, 0), 0.0), rec(heartbeat(uid, 1), 1.0), rec(heartbeat(uid, 2), 2.0)]


def test_a_clean_conversation_passes_every_check() -> None:
    seen = conversation(new_uid())
    for check in (
        check_first_full,
        check_sequence,
        check_full_on_flag,
        check_uid,
        check_new_uid,
        check_capabilities,
        check_content_type,
        check_one_in_flight,
        check_uid_header,
    ):
        assert check(seen) is None, check.__name__


def test_first_message_without_full_status() -> None:
    uid = new_uid()
    seen = [rec(heartbeat(uid, 0), 0.0), rec(full_status(uid, 1), 1.5)]
    assert "lacks agent_description" in (check_first_full(seen) or "")


def test_first_report_may_be_a_burst_and_later_connections_are_free() -> None:
    uid = new_uid()
    caps = CAPS | AgentCap.REPORTS_EFFECTIVE_CONFIG
    first = full_status(uid, 0, CAPS)
    first.capabilities = caps
    config = heartbeat(uid, 1, caps)
    config.effective_config.config_map.config_map[""].body = b"x"
    burst = [rec(first, 0.0), rec(config, 0.2), rec(heartbeat(uid, 2, caps), 1.0)]
    assert check_first_full(burst) is None
    late = [rec(first, 0.0), rec(config, 1.5)]
    assert "effective_config" in (check_first_full(late) or "")
    # What a ReportFullState flag brings in is the server's repair, not the report.
    asked = [rec(first, 0.0, Reply("full")), rec(config, 0.2)]
    assert "effective_config" in (check_first_full(asked) or "")
    # The spec lets an agent omit unchanged status on a new WebSocket connection.
    seen = [
        rec(full_status(uid, 0), 0.0, transport="ws", connection=1),
        rec(heartbeat(uid, 1), 1.0, transport="ws", connection=2),
    ]
    assert check_first_full(seen) is None


def test_sequence_gaps_and_resends() -> None:
    uid = new_uid()
    gap = [rec(full_status(uid, 0), 0.0), rec(heartbeat(uid, 2), 1.0)]
    assert "expected 1" in (check_sequence(gap) or "")
    first = rec(full_status(uid, 0), 0.0, Reply("500"))
    again = rec(full_status(uid, 0), 1.0)
    assert "sent twice" in (check_sequence([first, again]) or "")
    # The same request again after 429/503 is the spec's retry.
    throttled = rec(full_status(uid, 0), 0.0, Reply("503"))
    assert check_sequence([throttled, again]) is None
    # A WebSocket agent may start again from 0 with full status on a new connection.
    restart = [
        rec(full_status(uid, 0), 0.0, transport="ws", connection=1),
        rec(heartbeat(uid, 1), 1.0, transport="ws", connection=1),
        rec(full_status(uid, 0), 2.0, transport="ws", connection=2),
    ]
    assert check_sequence(restart) is None


def test_full_state_flag_must_be_followed_by_full_status() -> None:
    uid = new_uid()
    seen = [rec(full_status(uid, 0), 0.0, Reply("full")), rec(heartbeat(uid, 1), 1.0)]
    assert "ReportFullState" in (check_full_on_flag(seen) or "")
    seen[1] = rec(full_status(uid, 1), 1.0)
    assert check_full_on_flag(seen) is None


def test_websocket_messages_may_cross_a_reply() -> None:
    uid = new_uid()
    seen = [
        rec(full_status(uid, 0), 0.0, Reply("full"), transport="ws", connection=1),
        rec(heartbeat(uid, 1), 0.05, transport="ws", connection=1),
        rec(full_status(uid, 2), 0.3, transport="ws", connection=1),
    ]
    assert check_full_on_flag(seen) is None
    seen[2] = rec(heartbeat(uid, 2), 0.3, transport="ws", connection=1)
    assert "ReportFullState" in (check_full_on_flag(seen) or "")
    assert unanswered(seen[:1], frozenset({"full"})) == ["full"]
    # A bare message that crossed the reply answers nothing: still unjudged.
    assert unanswered(seen[:2], frozenset({"full"})) == ["full"]


def test_full_status_sent_as_the_flag_arrives_answers_it() -> None:
    """A fast WebSocket agent answers ReportFullState within the crossing time; with no
    later message (the connection then failed), that full message still judges the flag."""
    uid = new_uid()
    seen = [
        rec(heartbeat(uid, 0), 0.0, Reply("full"), transport="ws", connection=1),
        rec(full_status(uid, 1), 0.001, Reply("500"), transport="ws", connection=1),
    ]
    assert unanswered(seen, frozenset({"full"})) == []
    assert check_full_on_flag(seen) is None
    # A crossing message without full status, and nothing after it: not judged, not failed.
    seen[1] = rec(heartbeat(uid, 1), 0.001, Reply("500"), transport="ws", connection=1)
    assert unanswered(seen, frozenset({"full"})) == ["full"]
    assert check_full_on_flag(seen) is None


def test_uid_must_follow_the_assignment_only() -> None:
    old, new = new_uid(), new_uid()
    assigned = ServerToAgent(instance_uid=old)
    assigned.agent_identification.new_instance_uid = new
    seen = [
        rec(full_status(old, 0), 0.0, Reply("new-uid"), sent=assigned),
        rec(heartbeat(new, 1), 1.0),
    ]
    assert check_uid(seen) is None and check_new_uid(seen) is None
    ignored = [seen[0], rec(heartbeat(old, 1), 1.0)]
    assert "still carries" in (check_new_uid(ignored) or "")
    drifting = [rec(full_status(old, 0), 0.0), rec(heartbeat(new, 1), 1.0)]
    assert "without the server assigning it" in (check_uid(drifting) or "")
    short = [rec(full_status(old[:8], 0), 0.0, headers=())]
    assert "8 bytes" in (check_uid(short) or "")


def test_capability_bits() -> None:
    uid = new_uid()
    assert "ReportsStatus" in (check_capabilities([rec(heartbeat(uid, 0, 0), 0.0)]) or "")
    odd = heartbeat(uid, 0, CAPS | 0x10000)
    assert "undefined" in (check_capabilities([rec(odd, 0.0)]) or "")


def test_http_headers_and_in_flight() -> None:
    uid = new_uid()
    msg = full_status(uid, 0)
    plain = (("Content-Type", "application/octet-stream"),)
    assert "octet-stream" in (check_content_type([rec(msg, 0.0, headers=plain)]) or "")
    assert "no OpAMP-Instance-UID" in (check_uid_header([rec(msg, 0.0, headers=plain)]) or "")
    wrong = (("OpAMP-Instance-UID", str(uuid.uuid4())),)
    assert "but its instance_uid" in (check_uid_header([rec(msg, 0.0, headers=wrong)]) or "")
    assert "still unanswered" in (check_one_in_flight([rec(msg, 0.0, in_flight=2)]) or "")
    # WebSocket messages carry no per-message HTTP headers.
    assert check_content_type([rec(msg, 0.0, transport="ws", headers=())]) is None


def test_loops_and_repeats() -> None:
    uid = new_uid()
    fast = [rec(heartbeat(uid, n), n * 0.01) for n in range(12)]
    assert quick_resends(fast, 0.1) == 11
    slow = [rec(heartbeat(uid, n), n * 0.5) for n in range(12)]
    assert quick_resends(slow, 0.1) == 0
    assert repeats(full_status(uid, 0), full_status(uid, 5))
    assert not repeats(full_status(uid, 0), heartbeat(uid, 1))


def test_heartbeat_intervals() -> None:
    uid = new_uid()
    steady = [rec(heartbeat(uid, n), 2.0 * n) for n in range(4)]
    assert check_heartbeat(steady, 1.5, 3.5) is None
    hurried = [rec(heartbeat(uid, n), 1.0 * n) for n in range(4)]
    assert "apart" in (check_heartbeat(hurried, 1.5, 3.5) or "")
    silent = [rec(heartbeat(uid, 0), 0.0), rec(heartbeat(uid, 1), 9.0)]
    assert "no message for" in (check_heartbeat(silent, 1.5, 3.5) or "")
    # A status report between heartbeats is not a heartbeat too soon.
    mixed = [
        rec(heartbeat(uid, 0), 0.0),
        rec(full_status(uid, 1), 0.5),
        rec(heartbeat(uid, 2), 2.0),
    ]
    assert check_heartbeat(mixed, 1.5, 3.5) is None
