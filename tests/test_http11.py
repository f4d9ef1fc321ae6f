"""The HTTP/1.1 connection under the HTTP driver, against scripted raw servers.

Each server reads requests and writes exactly the bytes a test gives, so
framing (chunked, close-delimited, interim responses), reuse and refusal are
checked byte for byte.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import trustme

from conformance.drivers import http11
from conformance.drivers.http11 import (
    ConnectFailure,
    Connection,
    DeadlineFailure,
    DroppedFailure,
    Origin,
    OversizeFailure,
    PartialResponse,
    ProtocolFailure,
    RequestError,
    Response,
)
from tests.misbehaving import RawServer, raw_servers, read_http_request

Replies = Callable[[list[bytes]], str]


@pytest.fixture
def scripted() -> Iterator[Replies]:
    """A server answering the n-th request on a connection with ``replies[n]``, then closing."""
    with raw_servers() as start:

        def serve(replies: list[bytes]) -> str:
            def handler(conn: socket.socket, stop: threading.Event) -> None:
                for reply in replies:
                    read_http_request(conn)
                    conn.sendall(reply)
                conn.shutdown(socket.SHUT_WR)
                stop.wait(2)

            return start(handler).url()

        yield serve


def send(connection: Connection, target: str, *, limit: int = 1 << 20) -> Response:
    return connection.request(
        "POST", target, [], b"x", deadline=time.monotonic() + 5, max_body=limit
    )


def post(url: str, *, limit: int = 1 << 20, tls: ssl.SSLContext | None = None) -> Response:
    """One request on a fresh connection, closed afterwards."""
    origin, target = Origin.of(url)
    connection = Connection(origin, tls)
    try:
        return send(connection, target, limit=limit)
    finally:
        connection.close()


def test_chunked_body_with_extension_and_trailer(scripted: Replies) -> None:
    url = scripted(
        [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3;name=value\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n"
        ]
    )
    assert post(url).body == b"abcde"


def test_interim_response_is_skipped(scripted: Replies) -> None:
    url = scripted([b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"])
    assert post(url).body == b"ok"


def test_close_delimited_body(scripted: Replies) -> None:
    url = scripted([b"HTTP/1.1 200 OK\r\n\r\nuntil the end"])
    assert post(url).body == b"until the end"


def test_folded_header_field_is_unfolded(scripted: Replies) -> None:
    url = scripted([b"HTTP/1.1 200 OK\r\nX-A: one\r\n \t two\r\nContent-Length: 0\r\n\r\n"])
    assert post(url).headers["x-a"] == "one two"


def test_reset_inside_close_delimited_body_is_not_a_body() -> None:
    def handler(conn: socket.socket, stop: threading.Event) -> None:
        read_http_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npart")
        time.sleep(0.1)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()  # linger 0: a reset, not a clean close

    with raw_servers() as start:
        url = start(handler).url()
        with pytest.raises(PartialResponse) as caught:
            post(url)
    assert isinstance(caught.value.cause, DroppedFailure)


def test_idle_connection_is_not_reused(scripted: Replies, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http11, "IDLE_REUSE_SECONDS", 0.05)
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    with raw_servers() as start:

        def handler(conn: socket.socket, stop: threading.Event) -> None:
            with contextlib.suppress(ConnectionError):
                while True:
                    read_http_request(conn)
                    conn.sendall(ok)

        server = start(handler)
        origin, target = Origin.of(server.url())
        connection = Connection(origin, None)
        try:
            send(connection, target)
            send(connection, target)  # at once: the same connection
            time.sleep(0.2)
            send(connection, target)  # after idling: a new one
        finally:
            connection.close()
        assert server.accepted == 2


def test_repeated_header_fields_are_joined(scripted: Replies) -> None:
    url = scripted([b"HTTP/1.1 200 OK\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 0\r\n\r\n"])
    assert post(url).headers["x-a"] == "1, 2"


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(b"HTTP/2 200 OK\r\n\r\n", id="not-http-1"),
        pytest.param(b"garbage\r\n\r\n", id="garbage"),
        pytest.param(b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", id="header-without-colon"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nab", id="two-lengths"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", id="negative-length"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n", id="superscript-length"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\nab\r\n0\r\n\r\n",
            id="prefixed-chunk-size",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", id="bad-chunk-size"
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n0\r\n\r\n",
            id="chunk-too-long",
        ),
    ],
)
def test_malformed_responses_are_protocol_failures(scripted: Replies, reply: bytes) -> None:
    url = scripted([reply])
    with pytest.raises((ProtocolFailure, PartialResponse)) as caught:
        post(url)
    failure = caught.value
    cause = failure.cause if isinstance(failure, PartialResponse) else failure
    assert isinstance(cause, ProtocolFailure)


def test_head_over_the_limit(scripted: Replies) -> None:
    url = scripted([b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * (110 * 1024) + b"\r\n\r\n"])
    with pytest.raises(OversizeFailure):
        post(url)


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n", id="content-length"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n" + b"a" * 32 + b"\r\n",
            id="chunked",
        ),
        pytest.param(b"HTTP/1.1 200 OK\r\n\r\n" + b"a" * 50, id="close-delimited"),
    ],
)
def test_body_over_the_limit_keeps_status(scripted: Replies, reply: bytes) -> None:
    url = scripted([reply])
    with pytest.raises(PartialResponse) as caught:
        post(url, limit=20)
    assert isinstance(caught.value.cause, OversizeFailure)
    assert caught.value.status == 200


def test_connection_is_reused_and_reopened_after_close(scripted: Replies) -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    url = scripted([ok, closing])
    origin, target = Origin.of(url)
    connection = Connection(origin, None)
    try:
        bodies = []
        for _ in range(4):  # two on the first connection, two on the second
            bodies.append(send(connection, target).body)
            time.sleep(0.05)  # let the server's close arrive before the next reuse check
    finally:
        connection.close()
    assert bodies == [b"ok"] * 4


def test_a_repeated_head_is_handed_out_fresh_each_time(scripted: Replies) -> None:
    ok = b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nok"
    url = scripted([ok, ok])
    origin, target = Origin.of(url)
    connection = Connection(origin, None)
    try:
        first = send(connection, target)
        first.headers["x-a"] = "changed by the caller"
        second = send(connection, target)  # the same head, parsed once
    finally:
        connection.close()
    assert second.headers == {"x-a": "1", "content-length": "2"}


def test_a_refused_request_head_stays_refused() -> None:
    origin, target = Origin.of("http://127.0.0.1:9/v1/opamp")
    for _ in range(2):  # refused heads are not remembered as valid
        with pytest.raises(RequestError):
            Connection(origin, None).request(
                "POST", target, [("Bad Name", "v")], b"", deadline=time.monotonic() + 1, max_body=10
            )


def test_http_1_0_without_keep_alive_is_not_reused(scripted: Replies) -> None:
    url = scripted([b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"])
    assert not post(url).reusable


def test_closed_before_answer_is_dropped(scripted: Replies) -> None:
    url = scripted([])
    with pytest.raises(DroppedFailure):
        post(url)


def test_body_cut_short_keeps_status(scripted: Replies) -> None:
    url = scripted([b"HTTP/1.1 503 Busy\r\nContent-Length: 5\r\n\r\nab"])
    with pytest.raises(PartialResponse) as caught:
        post(url)
    assert isinstance(caught.value.cause, DroppedFailure)
    assert caught.value.status == 503


def test_passed_deadline_fails_before_connecting() -> None:
    origin, target = Origin.of("http://127.0.0.1:9/v1/opamp")
    with pytest.raises(DeadlineFailure):
        Connection(origin, None).request(
            "POST", target, [], b"", deadline=time.monotonic() - 1, max_body=10
        )


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([("Bad Name", "v")], id="space-in-name"),
        pytest.param([("X-A", "line\r\nInjected: 1")], id="crlf-in-value"),
        pytest.param([("X-A", " padded")], id="padded-value"),
    ],
)
def test_invalid_request_headers_are_refused(headers: list[tuple[str, str]]) -> None:
    origin, target = Origin.of("http://127.0.0.1:9/v1/opamp")
    with pytest.raises(RequestError):
        Connection(origin, None).request(
            "POST", target, headers, b"", deadline=time.monotonic() + 1, max_body=10
        )


def test_origin_of_ipv6_and_query() -> None:
    origin, target = Origin.of("https://[::1]:8443/a/b?c=d")
    assert (origin.scheme, origin.host, origin.port, origin.authority) == (
        "https",
        "::1",
        8443,
        "[::1]:8443",
    )
    assert target == "/a/b?c=d"
    with pytest.raises(RequestError):
        Origin.of("ftp://example.org/")


# -- TLS ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


def _tls_server(authority: trustme.CA, replies: int) -> RawServer:
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_side)

    def handler(conn: socket.socket, stop: threading.Event) -> None:
        with server_side.wrap_socket(conn, server_side=True) as tls:
            for _ in range(replies):
                read_http_request(tls)
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            stop.wait(2)

    return RawServer(handler).start()


def test_tls_connection_is_verified_and_reused(authority: trustme.CA) -> None:
    server = _tls_server(authority, replies=3)
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)
    origin, target = Origin.of(server.url(scheme="https"))
    connection = Connection(origin, trusting)
    try:
        bodies = [send(connection, target).body for _ in range(3)]
    finally:
        connection.close()
        server.stop()
    assert bodies == [b"ok"] * 3
    assert server.accepted == 1


def test_tls_untrusted_certificate_is_a_connect_failure(authority: trustme.CA) -> None:
    server = _tls_server(authority, replies=1)
    try:
        with pytest.raises(ConnectFailure, match="TLS"):
            post(server.url(scheme="https"), tls=ssl.create_default_context())
    finally:
        server.stop()


def test_invalid_request_target_is_refused() -> None:
    origin, _ = Origin.of("http://127.0.0.1:9/v1/opamp")
    with pytest.raises(RequestError):
        Connection(origin, None).request(
            "GET", "/a b", [], b"", deadline=time.monotonic() + 1, max_body=10
        )


@pytest.mark.parametrize("then_close", [False, True], ids=["stays-open", "closes"])
def test_answer_before_the_body_is_read(then_close: bool) -> None:
    """A server may refuse a large body from its headers alone (a 413) and never read it."""

    def handler(conn: socket.socket, stop: threading.Event) -> None:
        received = b""
        while b"\r\n\r\n" not in received:
            received += conn.recv(65536)
        conn.sendall(b"HTTP/1.1 413 Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        if then_close:
            conn.close()
        else:
            stop.wait(5)

    with raw_servers() as start:
        origin, target = Origin.of(start(handler).url())
        started = time.monotonic()
        response = Connection(origin, None).request(
            "POST", target, [], bytes(32 << 20), deadline=started + 10, max_body=10
        )
    assert response.status == 413
    assert time.monotonic() - started < 5
