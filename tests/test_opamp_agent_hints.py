"""Retry-After forms, unsolicited pushes and error-reply loops: the mock and the oracle."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from conformance.agent.mock_opamp import JUNK_RETRY_AFTER, MockOpAMP, retry_after
from conformance.messages import full_status, heartbeat, new_uid
from conformance.model.opamp_agent import ACK, Received, Reply, check_heartbeat, quick_resends
from conformance.wire import (
    CONTENT_TYPE,
    AgentToServer,
    parse_server_to_agent,
    ws_frame,
    ws_unframe,
)


def rec(msg: AgentToServer, at: float, reply: Reply = ACK) -> Received:
    return Received(at, "ws", 1, (), msg, "", reply, 1, msg.SerializeToString(), None)


def test_reply_hint_forms() -> None:
    assert str(Reply("503", 2)) == "503(2 s)"
    assert str(Reply("503", 2, "date")) == "503(Retry-After date, 2 s)"
    assert str(Reply("429", hint="junk")) == "429(Retry-After unreadable)"
    assert Reply() == ACK
    with pytest.raises(ValueError):
        Reply("503", 2, "fortnight")


def test_retry_after_header_forms() -> None:
    assert retry_after(Reply("503")) == {}
    assert retry_after(Reply("503", 3)) == {"Retry-After": "3"}
    assert retry_after(Reply("429", hint="junk")) == {"Retry-After": JUNK_RETRY_AFTER}
    before = time.time()
    date = parsedate_to_datetime(retry_after(Reply("503", 3, "date"))["Retry-After"])
    # Whole seconds, never sooner than asked, at most one second later.
    ahead = date.timestamp() - before
    assert 3.0 <= ahead <= 4.0 + (time.time() - before)


def test_refused_upgrade_and_http_reply_carry_the_date() -> None:
    uid = new_uid()
    with MockOpAMP() as mock:
        mock.refuse_connections([Reply("503", 5, "date")])
        with pytest.raises(InvalidStatus) as refused:
            connect(mock.ws_url, open_timeout=5).close()
        assert refused.value.response.status_code == 503
        value = refused.value.response.headers.get("Retry-After")
        assert value is not None and parsedate_to_datetime(value).timestamp() > time.time()
        mock.plan([Reply("429", hint="junk")])
        answer = httpx.post(
            mock.url,
            content=full_status(uid, 0).SerializeToString(),
            headers={"Content-Type": CONTENT_TYPE},
            timeout=5,
        )
        assert answer.status_code == 429
        assert answer.headers["Retry-After"] == JUNK_RETRY_AFTER
        assert [a.answer for a in mock.attempts()] == [503]


def test_pushes_start_when_asked_and_ask_for_nothing() -> None:
    uid = new_uid()
    with MockOpAMP() as mock, connect(mock.ws_url, open_timeout=5) as ws:
        ws.send(ws_frame(full_status(uid, 0).SerializeToString()))
        ws.recv(timeout=5)
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.3)  # nothing unasked before push()
        mock.push(0.1)
        frame = ws.recv(timeout=5)
        assert isinstance(frame, bytes)
        pushed = parse_server_to_agent(ws_unframe(frame).payload)
        assert bytes(pushed.instance_uid) == uid
        assert not pushed.flags and not pushed.HasField("error_response")
        mock.push(None)
        count = len(mock.pushes())
        time.sleep(0.3)
        assert 1 <= count <= len(mock.pushes()) <= count + 1
    assert len(mock.received()) == 1


def test_pushes_do_not_excuse_silence_but_excuse_close_messages() -> None:
    uid = new_uid()
    silent = [rec(heartbeat(uid, 0), 0.0), rec(heartbeat(uid, 1), 9.0)]
    assert "no message for" in (check_heartbeat(silent, 1.5, 3.5, [1.0, 2.0, 3.0]) or "")
    answered = [rec(heartbeat(uid, 0), 0.0), rec(heartbeat(uid, 1), 0.6)]
    assert "apart" in (check_heartbeat(answered, 1.5, 3.5) or "")
    assert check_heartbeat(answered, 1.5, 3.5, [0.5]) is None
    # A push long before the message does not excuse a heartbeat too soon.
    assert "apart" in (check_heartbeat(answered, 1.5, 3.5, [0.1]) or "")


def test_loops_after_bad_request_are_counted_for_that_kind_only() -> None:
    uid = new_uid()
    bad = Reply("bad-request")
    fast = [rec(heartbeat(uid, n), n * 0.01, bad) for n in range(12)]
    assert quick_resends(fast, 0.1) == 0
    assert quick_resends(fast, 0.1, frozenset({"bad-request"})) == 11
