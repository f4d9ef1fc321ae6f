"""The wire variants of the reference targets do what they claim, and the drivers cope.

The kill matrix proves that no variant changes a verdict; these tests prove
that each variant really is on the wire (a variant that silently did nothing
would make those kill-matrix cases prove nothing), and that the suite's
drivers take a server's conforming choices in their stride.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from aiohttp import WSMsgType, web
from websockets.exceptions import ConnectionClosedOK
from websockets.sync.client import connect

from conformance.agent.mock_opamp import MockOpAMP
from conformance.drivers import HttpDriver, WsDriver
from conformance.messages import full_status, heartbeat, new_uid
from conformance.model.opamp_agent import (
    Received,
    Reply,
    agent_missing,
    check_first_full,
    check_sequence,
    check_uid,
)
from conformance.plugin.embedded import EmbeddedServer
from conformance.wire import (
    CONTENT_TYPE,
    DEFAULT_PATH,
    ServerToAgent,
    parse_agent_to_server,
    ws_frame,
)
from fixtures.reference.server import WS_CLOSE_REASON
from tests.misbehaving import AiohttpServer

#: Bound on every wait for the agent's messages, in seconds.
WAIT = 15.0
TIMEOUT = 5.0


# -- the reference OpAMP agent ------------------------------------------------------


@contextlib.contextmanager
def reference_agent(url: str, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """The reference OpAMP agent polling ``url`` every 0.1 s; stopped (SIGTERM) on exit."""
    transport = "ws" if url.startswith("ws") else "http"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fixtures.reference.opamp_agent",
            f"--url={url}",
            f"--transport={transport}",
            "--poll-interval=0.1",
            "--request-timeout=5",
            "--backoff-initial=0.25",
            "--backoff-max=1",
            *args,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(TIMEOUT)
        if proc.stderr is not None:
            proc.stderr.close()


def _messages(mock: MockOpAMP, count: int) -> list[Received]:
    seen = mock.wait_for(count, WAIT)
    assert len(seen) >= count, f"{len(seen)} of {count} messages arrived"
    assert all(r.message is not None for r in seen), [r.problem for r in seen]
    return seen


def test_gzip_agent_compresses_every_request() -> None:
    with MockOpAMP() as mock, reference_agent(mock.url, "--gzip"):
        seen = _messages(mock, 4)
    assert all(r.header("Content-Encoding") == "gzip" for r in seen)
    assert check_sequence(seen) is None and check_first_full(seen) is None


def test_chunked_agent_sends_no_content_length() -> None:
    with MockOpAMP() as mock, reference_agent(mock.url, "--chunked"):
        seen = _messages(mock, 4)
    assert all(r.header("Transfer-Encoding") == "chunked" for r in seen)
    assert all(r.header("Content-Length") is None for r in seen)
    assert check_sequence(seen) is None


def test_gzip_and_chunked_together() -> None:
    with MockOpAMP() as mock, reference_agent(mock.url, "--gzip", "--chunked"):
        seen = _messages(mock, 3)
    assert all(r.header("Content-Encoding") == "gzip" for r in seen)
    assert all(r.header("Transfer-Encoding") == "chunked" for r in seen)


@pytest.mark.parametrize("keepalive", [True, False], ids=["keep-alive", "no-keepalive"])
def test_agent_connections_per_request(keepalive: bool) -> None:
    args = () if keepalive else ("--no-keepalive",)
    with MockOpAMP() as mock, reference_agent(mock.url, *args):
        seen = _messages(mock, 5)
        peers = mock.http_peers()[:5]
    if keepalive:
        assert len(set(peers)) < len(peers), f"no connection reused: {peers}"
    else:
        assert len(set(peers)) == len(peers), f"a connection reused: {peers}"
        assert all(r.header("Connection") == "close" for r in seen)


def test_websocket_agent_reconnects_on_purpose() -> None:
    with MockOpAMP() as mock, reference_agent(mock.ws_url, "--ws-reconnect-every", "2"):
        seen = mock.wait_for(12, WAIT)
        attempts = mock.attempts()
    by_connection: dict[int, list[Received]] = {}
    for item in seen:
        by_connection.setdefault(item.connection, []).append(item)
    numbers = sorted(by_connection)
    assert len(numbers) >= 3, f"connections {numbers}"
    assert all(a.answer == 101 for a in attempts)
    for number in numbers:
        messages = [r.message for r in by_connection[number]]
        assert all(m is not None for m in messages)
        first = messages[0]
        assert first is not None and agent_missing(first) == [], f"connection {number}"
    for number in numbers[:-1]:
        # At least two answered messages (a heartbeat may cross the second reply), then
        # agent_disconnect as the last one on the connection, and only there.
        messages = [r.message for r in by_connection[number]]
        assert len(messages) >= 3, f"connection {number}: {len(messages)} messages"
        assert [m is not None and m.HasField("agent_disconnect") for m in messages] == [False] * (
            len(messages) - 1
        ) + [True]
    seqs = [r.message.sequence_num for r in seen if r.message is not None]
    assert seqs == list(range(len(seqs))), "sequence numbers go on across connections"
    assert check_uid(seen) is None


def test_websocket_agent_reconnects_only_at_a_quiet_moment() -> None:
    """A reply asking for something (here ReportFullState) is acted on, on the same
    connection, before the agent leaves."""
    with MockOpAMP() as mock:
        mock.plan([Reply("ack"), Reply("full")])
        with reference_agent(mock.ws_url, "--ws-reconnect-every", "2"):
            seen = mock.wait_for(5, WAIT)
    kinds = [(r.connection, r.reply.kind) for r in seen[:4]]
    assert kinds[:3] == [(1, "ack"), (1, "full"), (1, "ack")], kinds
    third = seen[2].message
    assert third is not None and agent_missing(third) == []
    assert not third.HasField("agent_disconnect")


# -- the reference server -------------------------------------------------------------


@contextlib.contextmanager
def reference_server(*args: str) -> Iterator[str]:
    server = EmbeddedServer(args=list(args))
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


def _raw_post(url: str, body: bytes, *, close: bool = False) -> tuple[bytes, bytes]:
    """POST over a raw socket (``close``: asking for Connection: close): the response
    head, and what followed until the server closed the connection."""
    host, _, port = url.removeprefix("http://").partition(":")
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
        ask = "Connection: close\r\n" if close else ""
        head = (
            f"POST {DEFAULT_PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {CONTENT_TYPE}\r\n"
            f"{ask}Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        sock.sendall(head + body)
        data = b""
        while chunk := sock.recv(65536):  # the server closes: bounded by the socket timeout
            data += chunk
    response_head, _, rest = data.partition(b"\r\n\r\n")
    return response_head.lower(), rest


def test_server_without_keepalive_says_so_and_closes() -> None:
    with reference_server("--no-keepalive") as url:
        head, _ = _raw_post(url, full_status(new_uid(), 0).SerializeToString())
        assert b"\r\nconnection: close" in head
        driver = HttpDriver(url + DEFAULT_PATH, timeout=TIMEOUT)
        uid = new_uid()
        outcomes = [driver.send(heartbeat(uid, seq)) for seq in range(20)]
        driver.close()
    assert all(ex.ok for ex in outcomes), [ex.summary() for ex in outcomes if not ex.ok]
    assert all(ex.header("Connection") == "close" for ex in outcomes)


def test_server_chunked_replies() -> None:
    with reference_server("--chunked-replies") as url:
        head, _ = _raw_post(url, full_status(new_uid(), 0).SerializeToString(), close=True)
        assert b"transfer-encoding: chunked" in head and b"content-length" not in head
        driver = HttpDriver(url + DEFAULT_PATH, timeout=TIMEOUT)
        exchange = driver.send(full_status(new_uid(), 0))
        gzipped = driver.send(full_status(new_uid(), 0), gzip=True)
        driver.close()
        status = httpx.get(url + "/api/status", timeout=TIMEOUT)
    assert exchange.ok and gzipped.ok, (exchange.summary(), gzipped.summary())
    assert exchange.header("Transfer-Encoding") == "chunked"
    # The driver asks for gzip replies: compression and chunking together.
    assert exchange.header("Content-Encoding") == "gzip"
    assert status.headers["Transfer-Encoding"] == "chunked" and status.json()


def test_server_closes_websockets_and_the_driver_reconnects() -> None:
    with reference_server("--ws-close-every", "2") as url:
        ws_url = url.replace("http://", "ws://") + DEFAULT_PATH
        uid = new_uid()
        with connect(ws_url, open_timeout=TIMEOUT) as ws:
            for seq in range(2):
                ws.send(ws_frame(full_status(uid, seq).SerializeToString()))
                ws.recv(timeout=TIMEOUT)
            with pytest.raises(ConnectionClosedOK) as closed:
                ws.recv(timeout=TIMEOUT)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1000, WS_CLOSE_REASON)
        with WsDriver(ws_url, timeout=TIMEOUT) as driver:
            outcomes = [driver.send(full_status(uid, seq)) for seq in range(2, 9)]
            connects = driver.connects
    assert all(ex.ok for ex in outcomes), [ex.summary() for ex in outcomes if not ex.ok]
    assert connects == 4
    assert sum("reopened" in ex.detail or "sent again" in ex.detail for ex in outcomes) == 3


# -- the WebSocket driver and a close that crosses a message --------------------------


def _closes_first_message_unread() -> web.Application:
    """A server whose first connection closes cleanly as the first message arrives
    (a close that crossed it), and whose later connections answer every message."""
    connections = 0

    async def handler(request: web.Request) -> web.WebSocketResponse:
        nonlocal connections
        connections += 1
        first = connections == 1
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is not WSMsgType.BINARY:
                continue
            if first:
                await ws.close(code=1001, message=b"going away")
                break
            uid = parse_agent_to_server(msg.data[1:]).instance_uid
            await ws.send_bytes(ws_frame(ServerToAgent(instance_uid=uid).SerializeToString()))
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    return app


def test_driver_sends_again_after_a_clean_close_crossed_the_message() -> None:
    server = AiohttpServer(_closes_first_message_unread()).start()
    try:
        started = time.monotonic()
        with WsDriver(server.url("/", "ws"), timeout=TIMEOUT) as driver:
            exchange = driver.send(full_status(new_uid(), 0))
            connects = driver.connects
    finally:
        server.stop()
    assert exchange.ok, exchange.summary()
    assert connects == 2
    assert "close 1001 'going away'" in exchange.detail and "sent again" in exchange.detail
    assert time.monotonic() - started < 2 * TIMEOUT
