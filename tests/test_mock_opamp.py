"""The mock OpAMP server over real HTTP and WebSocket: plans, records and odd replies."""

from __future__ import annotations

import httpx
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from conformance.agent.mock_opamp import MockOpAMP
from conformance.messages import full_status, heartbeat, new_uid
from conformance.model.opamp_agent import Reply
from conformance.wire import (
    CONTENT_TYPE,
    AgentCap,
    ErrorType,
    ServerFlag,
    parse_server_to_agent,
    ws_frame,
    ws_unframe,
)


def binary(frame: str | bytes) -> bytes:
    assert isinstance(frame, bytes), "the mock sends binary frames"
    return frame


def post(mock: MockOpAMP, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        mock.url, content=body, headers={"Content-Type": CONTENT_TYPE, **headers}, timeout=5
    )


def test_http_replies_follow_the_plan_and_are_recorded() -> None:
    uid = new_uid()
    with MockOpAMP() as mock:
        mock.plan([Reply("full"), Reply("new-uid"), Reply("503", 7), Reply("empty")])
        first = parse_server_to_agent(post(mock, full_status(uid, 0).SerializeToString()).content)
        assert first.flags & ServerFlag.REPORT_FULL_STATE and first.instance_uid == uid
        second = parse_server_to_agent(post(mock, heartbeat(uid, 1).SerializeToString()).content)
        assert len(second.agent_identification.new_instance_uid) == 16
        busy = post(mock, heartbeat(uid, 2).SerializeToString())
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "7"
        assert post(mock, heartbeat(uid, 3).SerializeToString()).content == b""
        plain = parse_server_to_agent(post(mock, heartbeat(uid, 4).SerializeToString()).content)
        assert plain.flags == 0 and not plain.HasField("error_response")
        seen = mock.received()
    assert [r.reply.kind for r in seen] == ["full", "new-uid", "503", "empty", "ack"]
    assert [r.message.sequence_num for r in seen if r.message] == [0, 1, 2, 3, 4]
    assert seen[1].sent is not None and seen[1].sent.HasField("agent_identification")
    assert all(r.transport == "http" and r.in_flight == 1 for r in seen)
    assert seen[0].header("content-type") == CONTENT_TYPE


def test_heartbeat_offer_only_to_agents_that_accept_it() -> None:
    uid = new_uid()
    with MockOpAMP() as mock:
        mock.plan([Reply("heartbeat", 2)])
        plain = parse_server_to_agent(post(mock, full_status(uid, 0).SerializeToString()).content)
        seen = mock.received()
    assert not plain.HasField("connection_settings")
    assert seen[0].reply.kind == "ack"


def test_garbage_body_is_recorded_not_fatal() -> None:
    with MockOpAMP() as mock:
        mock.plan([Reply("bad-request")])
        reply = parse_server_to_agent(post(mock, b"\xff\xff\xff").content)
        assert reply.error_response.type == ErrorType.BAD_REQUEST
        seen = mock.received()
    assert seen[0].message is None and "not an AgentToServer" in seen[0].problem


def test_websocket_messages_upgrades_and_refusals() -> None:
    uid = new_uid()
    with MockOpAMP(ws_heartbeat=3) as mock:
        mock.refuse_connections([503])
        try:
            connect(mock.ws_url, open_timeout=5).close()
            raise AssertionError("the first upgrade should have been refused")
        except InvalidStatus as exc:
            assert exc.response.status_code == 503
        mock.plan([Reply("ack"), Reply("unavailable", 2)])
        caps = AgentCap.REPORTS_STATUS | AgentCap.REPORTS_HEARTBEAT
        with connect(mock.ws_url, open_timeout=5) as ws:
            # Offered only to an agent that accepts OpAMP connection settings.
            accepting = caps | AgentCap.ACCEPTS_OPAMP_CONNECTION_SETTINGS
            ws.send(ws_frame(full_status(uid, 0, accepting).SerializeToString()))
            offer = parse_server_to_agent(ws_unframe(binary(ws.recv(timeout=5))).payload)
            assert offer.connection_settings.opamp.heartbeat_interval_seconds == 3
            assert offer.connection_settings.opamp.destination_endpoint == mock.ws_url
            ws.send(ws_frame(heartbeat(uid, 1).SerializeToString()))
            busy = parse_server_to_agent(ws_unframe(binary(ws.recv(timeout=5))).payload)
            assert busy.error_response.type == ErrorType.UNAVAILABLE
            assert busy.error_response.retry_info.retry_after_nanoseconds == 2_000_000_000
        attempts = [a.answer for a in mock.attempts()]
        seen = mock.received()
    assert attempts == [503, 101]
    assert [(r.transport, r.connection) for r in seen] == [("ws", 2), ("ws", 2)]
