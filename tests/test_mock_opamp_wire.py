"""The mock OpAMP server reads request bodies the way agents may send them.

A regression guard: aiohttp used to decompress gzip bodies on its own before
the mock decompressed them again, so every gzip message was recorded as
unreadable and an agent sending gzip was never judged (a twin ignoring
ReportFullState came out of the run without a finding). Chunked bodies must
be read to their end, an unknown content coding must be recorded as the
message's problem, and the size limit holds after decompression.
"""

from __future__ import annotations

import gzip
import time
import zlib
from collections.abc import Iterator

import httpx

from conformance.agent.mock_opamp import MAX_BODY, MockOpAMP
from conformance.messages import full_status, heartbeat, new_uid
from conformance.model.opamp_agent import Received
from conformance.wire import CONTENT_TYPE, gzip_bytes, parse_server_to_agent

TIMEOUT = 5.0


def _post(
    client: httpx.Client, mock: MockOpAMP, content: bytes | Iterator[bytes], **headers: str
) -> httpx.Response:
    return client.post(
        mock.url,
        content=content,
        headers={"Content-Type": CONTENT_TYPE, **headers},
        timeout=TIMEOUT,
    )


def _only(mock: MockOpAMP) -> Received:
    seen = mock.wait_for(1, TIMEOUT)
    assert len(seen) == 1, seen
    return seen[0]


def test_a_gzip_body_is_decoded_once() -> None:
    msg = full_status(new_uid(), 0)
    plain = msg.SerializeToString()
    with MockOpAMP() as mock, httpx.Client() as client:
        reply = _post(client, mock, gzip_bytes(plain), **{"Content-Encoding": "gzip"})
        seen = _only(mock)
    assert reply.status_code == 200
    assert parse_server_to_agent(reply.content).instance_uid == msg.instance_uid
    assert seen.problem == "" and seen.message == msg
    # What is kept to spot resends is the message as decompressed, not the wire bytes.
    assert seen.raw == plain
    assert seen.header("Content-Encoding") == "gzip"


def test_a_gzip_body_with_mtime_and_several_members_is_decoded() -> None:
    msg = full_status(new_uid(), 3)
    plain = msg.SerializeToString()
    half = len(plain) // 2
    body = gzip.compress(plain[:half], mtime=1_700_000_000) + gzip.compress(plain[half:])
    with MockOpAMP() as mock, httpx.Client() as client:
        _post(client, mock, body, **{"Content-Encoding": "GZIP"})
        seen = _only(mock)
    assert seen.problem == "" and seen.message == msg


def test_a_chunked_body_is_read_to_its_end() -> None:
    msg = full_status(new_uid(), 0)
    plain = msg.SerializeToString()

    def slowly() -> Iterator[bytes]:
        # The second piece comes later: a read that stops at the first piece would
        # take half a message for the whole of it.
        yield plain[:10]
        time.sleep(0.2)
        yield plain[10:]

    with MockOpAMP() as mock, httpx.Client() as client:
        reply = _post(client, mock, slowly())
        seen = _only(mock)
    assert reply.status_code == 200
    assert seen.header("Transfer-Encoding") == "chunked"
    assert seen.header("Content-Length") is None
    assert seen.problem == "" and seen.message == msg


def test_a_chunked_gzip_body_is_decoded() -> None:
    msg = heartbeat(new_uid(), 7)
    wire = gzip_bytes(msg.SerializeToString())
    with MockOpAMP() as mock, httpx.Client() as client:
        _post(client, mock, iter([wire[:5], wire[5:]]), **{"Content-Encoding": "gzip"})
        seen = _only(mock)
    assert seen.problem == "" and seen.message == msg


def test_an_unsupported_content_encoding_is_a_problem_not_a_guess() -> None:
    plain = full_status(new_uid(), 0).SerializeToString()
    with MockOpAMP() as mock, httpx.Client() as client:
        # The body is a valid AgentToServer as it stands: only the label is wrong.
        _post(client, mock, plain, **{"Content-Encoding": "br"})
        deflated = zlib.compress(plain)
        _post(client, mock, deflated, **{"Content-Encoding": "deflate"})
        seen = mock.wait_for(2, TIMEOUT)
    assert [r.message for r in seen] == [None, None]
    assert "'br'" in seen[0].problem and "'deflate'" in seen[1].problem


def test_broken_gzip_is_recorded_as_unreadable() -> None:
    wire = gzip_bytes(full_status(new_uid(), 0).SerializeToString())
    with MockOpAMP() as mock, httpx.Client() as client:
        reply = _post(client, mock, wire[:-6], **{"Content-Encoding": "gzip"})
        seen = _only(mock)
    assert reply.status_code == 200  # the plan's reply: the mock never fails itself
    assert seen.message is None and seen.problem.startswith("unreadable body")


def test_the_size_limit_holds_after_decompression() -> None:
    bomb = gzip_bytes(b"\x00" * (MAX_BODY + 1))
    assert len(bomb) < MAX_BODY // 100
    with MockOpAMP() as mock, httpx.Client() as client:
        _post(client, mock, bomb, **{"Content-Encoding": "gzip"})
        seen = _only(mock)
    assert seen.message is None and "exceeds" in seen.problem


def test_http_peers_show_new_connections() -> None:
    uid = new_uid()
    with MockOpAMP() as mock:
        with httpx.Client() as client:
            for seq in range(3):
                _post(client, mock, heartbeat(uid, seq).SerializeToString())
        with httpx.Client() as client:
            for seq in range(3, 6):
                _post(client, mock, heartbeat(uid, seq).SerializeToString(), Connection="close")
        mock.wait_for(6, TIMEOUT)
        peers = mock.http_peers()
    assert len(peers) == 6
    assert len(set(peers[:3])) == 1, "a keep-alive client reuses its connection"
    assert len(set(peers[3:])) == 3, "Connection: close opens one connection per request"
