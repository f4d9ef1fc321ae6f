"""The HTTP and WebSocket drivers against real, misbehaving servers.

Every test talks to a server on 127.0.0.1 started by a fixture and stopped
in its teardown. A driver must never raise for what a server does: each
outcome is an Exchange, with a Problem when there is no usable reply.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from aiohttp import WSMsgType, web

from conformance.drivers import Exchange, HttpDriver, Problem, WsDriver
from conformance.messages import full_status, heartbeat
from conformance.wire import (
    CONTENT_TYPE,
    ErrorType,
    ServerCap,
    ServerFlag,
    ServerToAgent,
    gunzip_bounded,
    gzip_bytes,
    parse_agent_to_server,
    ws_frame,
)
from tests.misbehaving import (
    AiohttpServer,
    RawHandler,
    raw_servers,
    read_http_request,
    refused_port,
)

UID = uuid.UUID("0190f3a2-7b4c-7d3e-9a1b-0c2d3e4f5a6b").bytes
KiB = 1024
MiB = 1024 * KiB
#: Driver timeout for the tests that wait for one.
SHORT = 0.5
#: How late past its own timeout a driver may give up.
SLACK = 1.0
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: Trickle servers give up after this long, so a hung driver fails instead of hanging.
TRICKLE_FOR = 4.0


def server_reply(uid: bytes = UID) -> ServerToAgent:
    return ServerToAgent(
        instance_uid=uid,
        capabilities=ServerCap.ACCEPTS_STATUS,
        flags=ServerFlag.REPORT_FULL_STATE,
    )


def agent_message(seq: int = 1) -> bytes:
    return full_status(UID, seq).SerializeToString()


def check_bounded(started: float, timeout: float = SHORT) -> None:
    elapsed = time.monotonic() - started
    assert elapsed < timeout + SLACK, f"driver took {elapsed:.2f} s with timeout {timeout} s"


# --------------------------------------------------------------------------
# An aiohttp application with one misbehaviour per route
# --------------------------------------------------------------------------


@dataclass
class Captured:
    """Requests seen by the /capture route, as sent (bodies not decompressed)."""

    headers: list[dict[str, str]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)


def _protobuf(body: bytes, status: int = 200, encoding: str | None = None) -> web.Response:
    headers = {"Content-Type": CONTENT_TYPE}
    if encoding is not None:
        headers["Content-Encoding"] = encoding
    return web.Response(body=body, status=status, headers=headers)


def big_reply(size: int = 256 * KiB) -> bytes:
    """A valid ServerToAgent of about ``size`` bytes."""
    reply = server_reply()
    reply.custom_message.data = bytes(size)
    return reply.SerializeToString()


def _request_uid(body: bytes, encoding: str) -> bytes:
    raw = gunzip_bounded(body, MiB) if encoding == "gzip" else body
    return parse_agent_to_server(raw).instance_uid


def build_app(captured: Captured) -> web.Application:
    routes = web.RouteTableDef()

    @routes.post("/valid")
    async def valid(request: web.Request) -> web.Response:
        body = await request.read()
        uid = _request_uid(body, request.headers.get("Content-Encoding", ""))
        return _protobuf(server_reply(uid).SerializeToString())

    @routes.post("/capture")
    async def capture(request: web.Request) -> web.Response:
        body = await request.read()
        captured.headers.append(dict(request.headers))
        captured.bodies.append(body)
        uid = _request_uid(body, request.headers.get("Content-Encoding", ""))
        return _protobuf(server_reply(uid).SerializeToString())

    @routes.post("/gzip")
    async def gzipped(request: web.Request) -> web.Response:
        await request.read()
        return _protobuf(gzip_bytes(server_reply().SerializeToString()), encoding="gzip")

    @routes.post("/garbage")
    async def garbage(request: web.Request) -> web.Response:
        await request.read()
        return _protobuf(b"\xff\xff\xff\xff\xff")

    @routes.post("/empty")
    async def empty(request: web.Request) -> web.Response:
        await request.read()
        return _protobuf(b"")

    @routes.post("/big")
    async def big(request: web.Request) -> web.Response:
        await request.read()
        return _protobuf(big_reply())

    @routes.post("/bomb")
    async def bomb(request: web.Request) -> web.Response:
        await request.read()
        return _protobuf(gzip_bytes(bytes(10 * MiB)), encoding="gzip")

    @routes.post("/bad-gzip")
    async def bad_gzip(request: web.Request) -> web.Response:
        await request.read()
        return _protobuf(b"definitely not gzip", encoding="gzip")

    @routes.post("/brotli")
    async def brotli(request: web.Request) -> web.Response:
        await request.read()
        return _protobuf(server_reply().SerializeToString(), encoding="br")

    @routes.post("/unauthorized")
    async def unauthorized(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=401)

    @routes.post("/throttled")
    async def throttled(request: web.Request) -> web.Response:
        await request.read()
        text = json.dumps({"error": "too many requests", "retry_after": 30})
        return web.Response(
            status=429, text=text, content_type="application/json", headers={"Retry-After": "30"}
        )

    @routes.post("/bad-request")
    async def bad_request(request: web.Request) -> web.Response:
        await request.read()
        reply = ServerToAgent(instance_uid=UID)
        reply.error_response.type = ErrorType.BAD_REQUEST  # type: ignore[assignment]
        reply.error_response.error_message = "nope"
        return _protobuf(reply.SerializeToString(), status=400)

    # WebSocket routes: each gets a binary message and answers in its own way.

    async def _open(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        return ws

    def ws_route(
        path: str, answer: Callable[[bytes], bytes | str | None], *, close_after: int = 0
    ) -> None:
        """Answer every binary message with ``answer(data)`` (None: stay silent)."""

        async def handler(request: web.Request) -> web.WebSocketResponse:
            ws = await _open(request)
            seen = 0
            async for msg in ws:
                if msg.type is not WSMsgType.BINARY:
                    continue
                seen += 1
                out = answer(msg.data)
                if isinstance(out, str):
                    await ws.send_str(out)
                elif out is not None:
                    await ws.send_bytes(out)
                if close_after and seen >= close_after:
                    await ws.close()
                    break
            return ws

        routes.get(path)(handler)

    def echo(data: bytes) -> bytes:
        uid = parse_agent_to_server(data[1:]).instance_uid
        return ws_frame(server_reply(uid).SerializeToString())

    ws_route("/ws/echo", echo)
    ws_route("/ws/empty", lambda _: ws_frame(b""))
    ws_route("/ws/header1", lambda _: ws_frame(server_reply().SerializeToString(), header=1))
    ws_route("/ws/bad-header", lambda _: b"\xff\xff")
    ws_route("/ws/text", lambda _: "hello, I am text")
    ws_route("/ws/garbage", lambda _: ws_frame(b"\xff\xff\xff\xff\xff"))
    ws_route("/ws/silent", lambda _: None)
    ws_route("/ws/close", lambda _: None, close_after=1)
    ws_route("/ws/once", echo, close_after=1)
    ws_route("/ws/big", lambda _: ws_frame(big_reply()))

    @routes.get("/ws/headers")
    async def ws_headers(request: web.Request) -> web.WebSocketResponse:
        ws = await _open(request)
        async for msg in ws:
            if msg.type is WSMsgType.BINARY:
                await ws.send_bytes(ws_frame(server_reply().SerializeToString()))
                captured.headers.append(dict(request.headers))
        return ws

    @routes.get("/ws/record")
    async def ws_record(request: web.Request) -> web.WebSocketResponse:
        ws = await _open(request)
        async for msg in ws:
            if msg.type is WSMsgType.BINARY:
                captured.bodies.append(msg.data)
            elif msg.type is WSMsgType.TEXT:
                captured.bodies.append(msg.data.encode())
            await ws.send_bytes(ws_frame(server_reply().SerializeToString()))
        return ws

    @routes.get("/ws/unauthorized")
    async def ws_unauthorized(request: web.Request) -> web.Response:
        return web.Response(status=401, text="who are you?")

    app = web.Application()
    app.add_routes(routes)
    return app


@pytest.fixture(scope="module")
def captured() -> Captured:
    return Captured()


@pytest.fixture(scope="module")
def app_server(captured: Captured) -> Iterator[AiohttpServer]:
    server = AiohttpServer(build_app(captured))
    server.start()
    try:
        yield server
    finally:
        server.stop()


#: Starts a raw server running a handler and returns its URL.
RawStarter = Callable[[RawHandler], str]


@pytest.fixture
def raw_server() -> Iterator[RawStarter]:
    """Start raw servers with a given handler; all are stopped at teardown."""
    with raw_servers() as start:
        yield lambda handler: start(handler).url()


@pytest.fixture
def refused_url() -> Iterator[str]:
    sock = refused_port()
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def http(url: str, *, timeout: float = 5.0, max_reply_bytes: int = 64 * MiB) -> HttpDriver:
    return HttpDriver(url, timeout=timeout, max_reply_bytes=max_reply_bytes)


def ws(url: str, *, timeout: float = 5.0, max_reply_bytes: int = 64 * MiB) -> WsDriver:
    return WsDriver(url, timeout=timeout, max_reply_bytes=max_reply_bytes)


def send_http(driver: HttpDriver, seq: int = 1) -> Exchange:
    """Send one full-status message, then close the driver."""
    with driver:
        return driver.send(full_status(UID, seq))


# --------------------------------------------------------------------------
# HTTP: well-behaved answers
# --------------------------------------------------------------------------


def test_http_valid_reply(app_server: AiohttpServer) -> None:
    ex = send_http(http(app_server.url("/valid")))
    assert ex.ok
    assert ex.status == 200
    assert ex.problem is None
    assert ex.reply == server_reply()
    assert ex.reply_bytes == len(server_reply().SerializeToString())
    assert ex.transport == "http"
    assert ex.sent == full_status(UID, 1)
    assert ex.sent_bytes == len(agent_message())
    assert ex.header("content-type") == CONTENT_TYPE
    assert ex.elapsed >= 0
    assert "HTTP" not in ex.summary()


def test_http_gzip_encoded_reply_is_decoded(app_server: AiohttpServer) -> None:
    ex = send_http(http(app_server.url("/gzip")))
    assert ex.ok, ex.summary()
    assert ex.reply == server_reply()
    assert ex.header("Content-Encoding") == "gzip"


def test_http_send_gzip_and_headers(app_server: AiohttpServer, captured: Captured) -> None:
    before = len(captured.bodies)
    msg = full_status(UID, 3)
    with http(app_server.url("/capture")) as driver:
        ex = driver.send(msg, gzip=True)
        plain = driver.send(msg)
    assert ex.ok and plain.ok, (ex.summary(), plain.summary())
    (zipped_headers, plain_headers) = captured.headers[before:]
    (zipped_body, plain_body) = captured.bodies[before:]
    assert zipped_body[:2] == b"\x1f\x8b"
    assert gunzip_bounded(zipped_body, MiB) == msg.SerializeToString()
    assert zipped_headers["Content-Encoding"] == "gzip"
    assert ex.sent_bytes == len(zipped_body)
    assert plain_body == msg.SerializeToString()
    assert "Content-Encoding" not in plain_headers
    for headers in (zipped_headers, plain_headers):
        assert headers["Content-Type"] == "application/x-protobuf"
        assert headers["OpAMP-Instance-UID"] == "0190f3a2-7b4c-7d3e-9a1b-0c2d3e4f5a6b"
        assert headers["OpAMP-Instance-UID"] == str(uuid.UUID(bytes=UID))
        assert "gzip" in headers["Accept-Encoding"]


def test_http_extra_and_driver_headers(app_server: AiohttpServer, captured: Captured) -> None:
    before = len(captured.headers)
    with HttpDriver(app_server.url("/capture"), [("Authorization", "Bearer t0k")]) as driver:
        ex = driver.send(full_status(UID, 1), headers={"X-Extra": "1"}, uid_header=False)
    assert ex.ok, ex.summary()
    (headers,) = captured.headers[before:]
    assert headers["Authorization"] == "Bearer t0k"
    assert headers["X-Extra"] == "1"
    assert "OpAMP-Instance-UID" not in headers


def test_http_no_uid_header_for_odd_uid_length(
    app_server: AiohttpServer, captured: Captured
) -> None:
    before = len(captured.headers)
    with http(app_server.url("/capture")) as driver:
        ex = driver.send(heartbeat(b"short", 1))
    assert ex.ok, ex.summary()
    (headers,) = captured.headers[before:]
    assert "OpAMP-Instance-UID" not in headers


def test_http_401_empty_body(app_server: AiohttpServer) -> None:
    ex = send_http(http(app_server.url("/unauthorized")))
    assert ex.status == 401
    assert ex.reply is None
    assert ex.problem is None
    assert not ex.ok
    assert "HTTP 401" in ex.summary()


def test_http_429_json_body(app_server: AiohttpServer) -> None:
    ex = send_http(http(app_server.url("/throttled")))
    assert ex.status == 429
    assert ex.reply is None
    assert ex.problem is None
    assert ex.detail.startswith('{"error": "too many requests"')
    assert ex.header("Retry-After") == "30"
    assert not ex.ok


def test_http_error_status_with_protobuf_body_is_decoded(app_server: AiohttpServer) -> None:
    ex = send_http(http(app_server.url("/bad-request")))
    assert ex.status == 400
    assert ex.reply is not None
    assert ex.reply.error_response.type == ErrorType.BAD_REQUEST
    assert ex.problem is None
    assert not ex.ok  # a decoded reply, but not a success status


# --------------------------------------------------------------------------
# HTTP: bad bodies
# --------------------------------------------------------------------------


def test_http_garbage_body(app_server: AiohttpServer) -> None:
    ex = send_http(http(app_server.url("/garbage")))
    assert ex.problem is Problem.UNDECODABLE
    assert ex.status == 200
    assert ex.reply is None
    assert not ex.ok


def test_http_empty_body(app_server: AiohttpServer) -> None:
    ex = send_http(http(app_server.url("/empty")))
    assert ex.problem is Problem.EMPTY
    assert ex.status == 200
    assert ex.reply is None


def test_http_body_over_limit(app_server: AiohttpServer) -> None:
    started = time.monotonic()
    ex = send_http(http(app_server.url("/big"), max_reply_bytes=64 * KiB))
    assert ex.problem is Problem.TOO_LARGE
    assert ex.status == 200
    assert ex.reply is None
    check_bounded(started, 5.0)


def test_http_body_under_limit_same_route(app_server: AiohttpServer) -> None:
    ex = send_http(http(app_server.url("/big"), max_reply_bytes=MiB))
    assert ex.ok, ex.summary()
    assert ex.reply is not None
    assert len(ex.reply.custom_message.data) == 256 * KiB


def test_http_gzip_bomb(app_server: AiohttpServer) -> None:
    ex = send_http(http(app_server.url("/bomb"), max_reply_bytes=MiB))
    assert ex.problem is Problem.TOO_LARGE
    assert ex.status == 200
    assert ex.reply is None
    assert ex.reply_bytes < MiB  # the compressed size, not the bomb's


def test_http_bad_gzip(app_server: AiohttpServer) -> None:
    ex = send_http(http(app_server.url("/bad-gzip")))
    assert ex.problem is Problem.UNDECODABLE
    assert "gzip" in ex.detail


def test_http_unrequested_encoding(app_server: AiohttpServer) -> None:
    ex = send_http(http(app_server.url("/brotli")))
    assert ex.problem is Problem.UNDECODABLE
    assert "br" in ex.detail


# --------------------------------------------------------------------------
# HTTP: broken connections (raw socket servers)
# --------------------------------------------------------------------------


def _never_answer(conn: socket.socket, stop: threading.Event) -> None:
    read_http_request(conn)
    stop.wait()


def _close_at_once(conn: socket.socket, stop: threading.Event) -> None:
    conn.close()


def _close_after_request(conn: socket.socket, stop: threading.Event) -> None:
    read_http_request(conn)
    conn.shutdown(socket.SHUT_RDWR)


def _close_inside_body(conn: socket.socket, stop: threading.Event) -> None:
    read_http_request(conn)
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\n"
        b"Content-Length: 100\r\n\r\n\x0a\x10"
    )
    conn.shutdown(socket.SHUT_RDWR)


def _trickle(head: bytes, interval: float) -> RawHandler:
    """Send ``head`` at once, then one body byte per ``interval``."""

    def handler(conn: socket.socket, stop: threading.Event) -> None:
        read_http_request(conn)
        conn.sendall(head)
        give_up = time.monotonic() + TRICKLE_FOR
        while not stop.wait(interval) and time.monotonic() < give_up:
            conn.sendall(b"\x00")

    return handler


def _trickle_head(conn: socket.socket, stop: threading.Event) -> None:
    """Send the status line and headers one byte at a time, never finishing."""
    read_http_request(conn)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nX-Pad: " + b"a" * 200
    give_up = time.monotonic() + TRICKLE_FOR
    for byte in head:
        if stop.wait(0.1) or time.monotonic() > give_up:
            return
        conn.sendall(bytes([byte]))


def test_http_no_answer_times_out(raw_server: RawStarter) -> None:
    url = raw_server(_never_answer)
    started = time.monotonic()
    ex = send_http(http(url, timeout=SHORT))
    check_bounded(started)
    assert ex.problem is Problem.TIMEOUT
    assert ex.status is None
    assert ex.reply is None
    assert "0.5" in ex.detail


def test_http_per_call_timeout_overrides(raw_server: RawStarter) -> None:
    url = raw_server(_never_answer)
    started = time.monotonic()
    with http(url, timeout=30.0) as driver:
        ex = driver.send(full_status(UID, 1), timeout=SHORT)
    check_bounded(started)
    assert ex.problem is Problem.TIMEOUT


@pytest.mark.parametrize(
    "handler",
    [
        pytest.param(_close_at_once, id="close-at-once"),
        pytest.param(_close_after_request, id="close-after-request"),
        pytest.param(_close_inside_body, id="close-inside-body"),
    ],
)
def test_http_server_closes(raw_server: RawStarter, handler: RawHandler) -> None:
    url = raw_server(handler)
    started = time.monotonic()
    ex = send_http(http(url, timeout=SHORT))
    check_bounded(started)
    assert ex.problem is Problem.DISCONNECTED, ex.summary()
    assert ex.reply is None
    assert ex.detail


def test_http_nothing_listening(refused_url: str) -> None:
    started = time.monotonic()
    ex = send_http(http(f"http://{refused_url}/v1/opamp", timeout=SHORT))
    check_bounded(started)
    assert ex.problem is Problem.CONNECT
    assert ex.status is None
    assert ex.reply is None


def test_http_body_trickles_past_deadline(raw_server: RawStarter) -> None:
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 1000\r\n\r\n"
    )
    url = raw_server(_trickle(head, 0.1))
    started = time.monotonic()
    ex = send_http(http(url, timeout=SHORT))
    check_bounded(started)
    assert ex.problem is Problem.TIMEOUT, ex.summary()
    assert ex.status == 200


def test_http_chunked_body_trickles_past_deadline(raw_server: RawStarter) -> None:
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n1000\r\n"
    )
    url = raw_server(_trickle(head, 0.1))
    started = time.monotonic()
    ex = send_http(http(url, timeout=SHORT))
    check_bounded(started)
    assert ex.problem is Problem.TIMEOUT, ex.summary()


def test_http_head_trickles_past_deadline(raw_server: RawStarter) -> None:
    url = raw_server(_trickle_head)
    started = time.monotonic()
    ex = send_http(http(url, timeout=SHORT))
    check_bounded(started)
    assert ex.problem is Problem.TIMEOUT, ex.summary()


def test_http_completed_request_is_not_cut_later(app_server: AiohttpServer) -> None:
    # The deadline watchdog of a finished request must not break the next one.
    with http(app_server.url("/valid"), timeout=0.2) as driver:
        first = driver.send(full_status(UID, 1))
        time.sleep(0.4)
        second = driver.send(full_status(UID, 2))
        third = driver.send(full_status(UID, 3))
    assert [ex.ok for ex in (first, second, third)] == [True, True, True], [
        ex.summary() for ex in (first, second, third)
    ]


def test_http_keeps_working_after_a_timeout(
    raw_server: RawStarter, app_server: AiohttpServer
) -> None:
    with http(raw_server(_never_answer), timeout=SHORT) as stalled:
        assert stalled.send(full_status(UID, 1)).problem is Problem.TIMEOUT
        stalled.url = app_server.url("/valid")
        ex = stalled.send(full_status(UID, 2))
    assert ex.ok, ex.summary()


def test_http_driver_usable_after_failures(raw_server: RawStarter) -> None:
    url = raw_server(_close_at_once)
    with http(url, timeout=SHORT) as driver:
        for seq in range(3):
            ex = driver.send(full_status(UID, seq))
            assert ex.problem is Problem.DISCONNECTED


# --------------------------------------------------------------------------
# WebSocket
# --------------------------------------------------------------------------


def test_ws_normal_reply(app_server: AiohttpServer) -> None:
    with ws(app_server.url("/ws/echo", "ws")) as driver:
        first = driver.send(full_status(UID, 1))
        second = driver.send(full_status(UID, 2))
        assert driver.connected
        assert driver.connects == 1
    assert not driver.connected
    for ex in (first, second):
        assert ex.ok, ex.summary()
        assert ex.status == 101
        assert ex.reply == server_reply()
        assert ex.transport == "ws"
        assert ex.sent_bytes == len(agent_message()) + 1


def test_ws_empty_payload_is_valid(app_server: AiohttpServer) -> None:
    with ws(app_server.url("/ws/empty", "ws")) as driver:
        ex = driver.send(full_status(UID, 1))
    assert ex.ok, ex.summary()
    assert ex.reply == ServerToAgent()


def test_ws_connect_explicitly(app_server: AiohttpServer) -> None:
    with ws(app_server.url("/ws/echo", "ws")) as driver:
        opened = driver.connect()
        assert opened.status == 101
        assert opened.problem is None
        assert opened.reply is None
        assert driver.connected
        ex = driver.send(full_status(UID, 1))
        assert driver.connects == 1
    assert ex.ok, ex.summary()


def test_ws_headers_sent_at_upgrade(app_server: AiohttpServer, captured: Captured) -> None:
    before = len(captured.headers)
    url = app_server.url("/ws/headers", "ws")
    with WsDriver(url, [("Authorization", "Bearer t0k")], timeout=5.0) as driver:
        ex = driver.send(full_status(UID, 1))
    assert ex.ok, ex.summary()
    (headers,) = captured.headers[before:]
    assert headers["Authorization"] == "Bearer t0k"


def test_ws_outgoing_framing(app_server: AiohttpServer, captured: Captured) -> None:
    before = len(captured.bodies)
    with ws(app_server.url("/ws/record", "ws")) as driver:
        plain = driver.send(full_status(UID, 1))
        odd = driver.send(full_status(UID, 1), header=300)
        text = driver.send_raw("not binary")
    assert plain.ok and odd.ok and text.ok, (plain.summary(), odd.summary(), text.summary())
    (plain_data, odd_data, text_data) = captured.bodies[before:]
    assert plain_data == b"\x00" + agent_message()
    assert odd_data == b"\xac\x02" + agent_message()
    assert text_data == b"not binary"
    assert plain.sent_bytes == len(plain_data)
    assert odd.sent_bytes == len(odd_data)


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        pytest.param("/ws/header1", Problem.FRAMING, id="header-1"),
        pytest.param("/ws/bad-header", Problem.FRAMING, id="truncated-header"),
        pytest.param("/ws/text", Problem.NOT_BINARY, id="text"),
        pytest.param("/ws/garbage", Problem.UNDECODABLE, id="garbage"),
    ],
)
def test_ws_bad_reply(app_server: AiohttpServer, path: str, problem: Problem) -> None:
    with ws(app_server.url(path, "ws")) as driver:
        ex = driver.send(full_status(UID, 1))
        assert driver.connected  # a bad message is no reason to drop the socket
    assert ex.problem is problem, ex.summary()
    assert ex.status == 101
    assert ex.reply is None
    assert ex.reply_bytes > 0
    assert not ex.ok


def test_ws_header_1_detail(app_server: AiohttpServer) -> None:
    with ws(app_server.url("/ws/header1", "ws")) as driver:
        ex = driver.send(full_status(UID, 1))
    assert ex.detail == "header 1, expected 0"


def test_ws_no_reply_times_out(app_server: AiohttpServer) -> None:
    started = time.monotonic()
    with ws(app_server.url("/ws/silent", "ws"), timeout=SHORT) as driver:
        ex = driver.send(full_status(UID, 1))
    check_bounded(started)
    assert ex.problem is Problem.TIMEOUT
    assert ex.status == 101
    assert ex.reply is None


def test_ws_server_closes(app_server: AiohttpServer) -> None:
    started = time.monotonic()
    with ws(app_server.url("/ws/close", "ws"), timeout=SHORT) as driver:
        ex = driver.send(full_status(UID, 1))
        assert not driver.connected
    check_bounded(started)
    assert ex.problem is Problem.DISCONNECTED, ex.summary()
    assert ex.reply is None


def test_ws_raw_server_drops_connection(raw_server: RawStarter) -> None:
    # A plain TCP server that hangs up instead of upgrading.
    url = raw_server(_close_after_request).replace("http://", "ws://")
    started = time.monotonic()
    with ws(url, timeout=SHORT) as driver:
        ex = driver.send(full_status(UID, 1))
    check_bounded(started)
    assert ex.problem is Problem.CONNECT, ex.summary()
    assert driver.connects == 0


def _ws_handshake(conn: socket.socket) -> None:
    """Complete a WebSocket opening handshake by hand."""
    _, headers, _ = read_http_request(conn)
    key = headers["sec-websocket-key"].encode()
    accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
    conn.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


def _ws_then_bad_frame(conn: socket.socket, stop: threading.Event) -> None:
    _ws_handshake(conn)
    conn.recv(65536)  # the client's message
    conn.sendall(b"\x83\x02ab")  # opcode 3 is reserved: a protocol error
    stop.wait(2.0)


def _ws_then_huge_frame(conn: socket.socket, stop: threading.Event) -> None:
    """Announce a 1 MiB binary frame, send a little of it, keep the socket open."""
    _ws_handshake(conn)
    conn.recv(65536)
    conn.sendall(b"\x82\x7f" + MiB.to_bytes(8, "big") + bytes(1024))
    stop.wait(2.0)


def _ws_then_hang_up(conn: socket.socket, stop: threading.Event) -> None:
    _ws_handshake(conn)
    conn.recv(65536)
    conn.shutdown(socket.SHUT_RDWR)


@pytest.mark.parametrize(
    "handler",
    [
        pytest.param(_ws_then_bad_frame, id="bad-frame"),
        pytest.param(_ws_then_hang_up, id="tcp-hang-up"),
    ],
)
def test_ws_broken_after_upgrade(raw_server: RawStarter, handler: RawHandler) -> None:
    url = raw_server(handler).replace("http://", "ws://")
    started = time.monotonic()
    with ws(url, timeout=SHORT) as driver:
        ex = driver.send(full_status(UID, 1))
        assert driver.connects == 1
        assert not driver.connected
    check_bounded(started, 2 * SHORT)
    assert ex.problem is Problem.DISCONNECTED, ex.summary()
    assert ex.status == 101


def test_ws_upgrade_never_answered(raw_server: RawStarter) -> None:
    url = raw_server(_never_answer).replace("http://", "ws://")
    started = time.monotonic()
    with ws(url, timeout=SHORT) as driver:
        ex = driver.send(full_status(UID, 1))
    check_bounded(started)
    assert ex.problem is Problem.TIMEOUT, ex.summary()


def test_ws_upgrade_refused_401(app_server: AiohttpServer) -> None:
    with ws(app_server.url("/ws/unauthorized", "ws")) as driver:
        ex = driver.send(full_status(UID, 1))
        assert not driver.connected
    assert ex.problem is Problem.REJECTED
    assert ex.status == 401
    assert ex.reply is None
    assert driver.connects == 0
    assert ex.header("content-type") is not None


def test_ws_nothing_listening(refused_url: str) -> None:
    started = time.monotonic()
    with ws(f"ws://{refused_url}/v1/opamp", timeout=SHORT) as driver:
        ex = driver.send(full_status(UID, 1))
        again = driver.connect()
    check_bounded(started, 2 * SHORT)
    for outcome in (ex, again):
        assert outcome.problem is Problem.CONNECT
        assert outcome.status is None
    assert driver.connects == 0


def test_ws_message_over_limit(app_server: AiohttpServer) -> None:
    started = time.monotonic()
    with ws(app_server.url("/ws/big", "ws"), max_reply_bytes=64 * KiB) as driver:
        ex = driver.send(full_status(UID, 1))
        assert not driver.connected
    check_bounded(started, 5.0)
    assert ex.problem is Problem.TOO_LARGE, ex.summary()
    assert ex.reply is None


def test_ws_message_over_limit_server_lingers(raw_server: RawStarter) -> None:
    # The server neither finishes the frame nor closes TCP after our 1009 close.
    url = raw_server(_ws_then_huge_frame).replace("http://", "ws://")
    started = time.monotonic()
    with ws(url, timeout=SHORT, max_reply_bytes=64 * KiB) as driver:
        ex = driver.send(full_status(UID, 1))
        assert not driver.connected
    check_bounded(started, 2 * SHORT)
    assert ex.problem is Problem.TOO_LARGE, ex.summary()


def test_ws_reconnect_after_close(app_server: AiohttpServer) -> None:
    with ws(app_server.url("/ws/echo", "ws")) as driver:
        assert driver.send(full_status(UID, 1)).ok
        driver.close()
        assert not driver.connected
        ex = driver.send(full_status(UID, 2))
        assert driver.connects == 2
    assert ex.ok, ex.summary()


def test_ws_reconnect_after_server_close(app_server: AiohttpServer) -> None:
    # /ws/once answers one message per connection, then closes (1000): the next message
    # goes on a new socket, as an agent's would, and the exchange says so.
    with ws(app_server.url("/ws/once", "ws"), timeout=SHORT) as driver:
        outcomes = [driver.send(full_status(UID, seq)) for seq in range(4)]
        connects = driver.connects
    problems = [ex.problem for ex in outcomes]
    assert problems == [None, None, None, None], [ex.summary() for ex in outcomes]
    assert connects == 4
    assert all(
        "the server had closed the socket" in ex.detail or "sent again" in ex.detail
        for ex in outcomes[1:]
    ), [ex.detail for ex in outcomes]


def test_ws_close_is_idempotent(app_server: AiohttpServer) -> None:
    driver = ws(app_server.url("/ws/echo", "ws"))
    driver.close()
    assert driver.send(full_status(UID, 1)).ok
    driver.close()
    driver.close()
    assert not driver.connected
