"""The start-up probe: a misconfigured run is a usage error (exit 4), said once and clearly.

Each case runs the suite as a user does (``tests/suite_runner.py``) against a
real server on 127.0.0.1: a TLS port given as ``http://``, a redirect, a
server that trickles its answer, one that never answers, one that cannot be
connected to. Each must end with exit 4 and one message naming the fix, not
with findings against the target. The probe's own logic is also checked
in-process, where counting the server's connections shows that a correct
server costs one exchange.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from conformance.outcomes import NotApplicable, NotJudged
from conformance.plugin import targets as targets_module
from conformance.plugin.embedded import EmbeddedError, EmbeddedServer
from conformance.plugin.options import Options
from conformance.plugin.targets import TargetSession, Unreachable, check_reachable
from conformance.profiles import PROFILES
from conformance.target import Transport, parse_target
from conformance.wire import CONTENT_TYPE, ServerToAgent
from tests.misbehaving import RawHandler, RawServer, read_http_request, refused_port
from tests.suite_runner import SuiteRun, run_suite

#: Bound on one suite run that must stop at start-up, in seconds.
RUN_BOUND = 60
#: Wall time a run that stops at start-up may take (interpreter, plugin, probe).
QUICK_EXIT = 30.0
#: Go's net/http answer to plain HTTP on a TLS port (fleet-server is written in Go).
GO_PLAIN_ON_TLS = (
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
)
#: A TLS alert record (fatal, protocol_version), what some TLS stacks answer to plain text.
TLS_ALERT = b"\x15\x03\x03\x00\x02\x02\x46"


@pytest.fixture(scope="module")
def tls_context() -> ssl.SSLContext:
    ca = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def servers() -> Iterator[list[RawServer]]:
    started: list[RawServer] = []
    try:
        yield started
    finally:
        for server in started:
            server.stop()


def serve(servers: list[RawServer], handler: RawHandler) -> RawServer:
    servers.append(RawServer(handler).start())
    return servers[-1]


def startup_failure(run: SuiteRun, *phrases: str) -> str:
    """Check that the run stopped at start-up with exit 4 and one message; return it."""
    assert run.returncode == 4, run.output
    messages = re.findall(r"fleet-conformance: target .*", run.output)
    assert len(messages) == 1, run.output
    for phrase in phrases:
        assert phrase in messages[0], run.output
    assert "FAILED" not in run.output and "PASSED" not in run.output, run.output
    assert run.report is None, "a misconfigured run judges nothing"
    return str(messages[0])


def run_bounded(args: list[str], workdir: Path) -> SuiteRun:
    started = time.monotonic()
    run = run_suite(args, workdir, timeout=RUN_BOUND)
    assert time.monotonic() - started < QUICK_EXIT, run.output
    return run


# -- servers -------------------------------------------------------------------


def tls_port(context: ssl.SSLContext, plain: str) -> RawHandler:
    """A TLS server port; ``plain`` is what it does with plain text: ``reset`` (Python's
    ssl: the handshake fails, the connection is reset), ``go`` (Go's 400 answer), or
    ``alert`` (a TLS alert record, then the connection stays open)."""

    def handle(conn: socket.socket, stop: threading.Event) -> None:
        conn.settimeout(5.0)
        first = conn.recv(1, socket.MSG_PEEK)
        if first == b"\x16" or plain == "reset":  # a ClientHello, or the real TLS stack
            with context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)  # the client hangs up once the handshake is done
            return
        if plain == "go":
            conn.recv(65536)
            conn.sendall(GO_PLAIN_ON_TLS)
            return
        conn.sendall(TLS_ALERT)
        stop.wait(5.0)

    return handle


def _valid_reply(conn: socket.socket, stop: threading.Event) -> None:
    """A correct plain OpAMP server, for as many requests as the connection carries."""
    body = ServerToAgent(instance_uid=b"\x01" * 16).SerializeToString()
    while not stop.is_set():
        try:
            read_http_request(conn)
        except ConnectionError:
            return
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s"
            % (CONTENT_TYPE.encode(), len(body), body)
        )


def _bad_request(conn: socket.socket, stop: threading.Event) -> None:
    """A plain HTTP server that answers anything (a ClientHello too) with a 400."""
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


def _hang_up(conn: socket.socket, stop: threading.Event) -> None:
    """A plain server that drops every connection: reachable, but broken."""
    conn.recv(65536)


def _redirect(conn: socket.socket, stop: threading.Event) -> None:
    read_http_request(conn)
    conn.sendall(
        b"HTTP/1.1 308 Permanent Redirect\r\nLocation: /v2/opamp\r\n"
        b"Content-Length: 0\r\nConnection: close\r\n\r\n"
    )


def _trickle_body(conn: socket.socket, stop: threading.Event) -> None:
    """Send the head at once, then the body a byte every 0.2 s."""
    read_http_request(conn)
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 1000\r\n\r\n"
    )
    for _ in range(100):
        if stop.wait(0.2):
            return
        conn.sendall(b"\x00")


def _silent(conn: socket.socket, stop: threading.Event) -> None:
    stop.wait(10.0)


def _slow_reply(conn: socket.socket, stop: threading.Event) -> None:
    """A correct reply after 1 s."""
    if not stop.wait(1.0):
        _valid_reply(conn, stop)


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port whose listen queue is full: a connect to it never completes."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port: int = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield port
    finally:
        for sock in [*fillers, listener]:
            sock.close()


# -- the suite as a user runs it ------------------------------------------------


@pytest.mark.parametrize("plain", ["reset", "go", "alert"])
def test_tls_port_given_as_http(
    plain: str, tls_context: ssl.SSLContext, servers: list[RawServer], tmp_path: Path
) -> None:
    server = serve(servers, tls_port(tls_context, plain))
    url = f"http://127.0.0.1:{server.port}"
    run = run_bounded([f"--target={url}", "--request-timeout=2"], tmp_path)
    startup_failure(run, "this port speaks TLS", f"use --target=https://127.0.0.1:{server.port}")


def test_tls_port_given_as_ws(
    tls_context: ssl.SSLContext, servers: list[RawServer], tmp_path: Path
) -> None:
    server = serve(servers, tls_port(tls_context, "reset"))
    run = run_bounded([f"--target=ws://127.0.0.1:{server.port}/v1/opamp"], tmp_path)
    startup_failure(run, "this port speaks TLS", f"use --target=wss://127.0.0.1:{server.port}")


def test_plain_port_given_as_https(servers: list[RawServer], tmp_path: Path) -> None:
    server = serve(servers, _bad_request)
    run = run_bounded([f"--target=https://127.0.0.1:{server.port}"], tmp_path)
    startup_failure(
        run, "speaks plain HTTP, not TLS", f"use --target=http://127.0.0.1:{server.port}"
    )


@pytest.mark.parametrize("scheme", ["http", "ws"])
def test_redirect_names_the_location(scheme: str, servers: list[RawServer], tmp_path: Path) -> None:
    server = serve(servers, _redirect)
    run = run_bounded([f"--target={scheme}://127.0.0.1:{server.port}"], tmp_path)
    startup_failure(run, "redirect (HTTP 308)", f"{scheme}://127.0.0.1:{server.port}/v2/opamp")


def test_trickling_body_is_too_slow(servers: list[RawServer], tmp_path: Path) -> None:
    server = serve(servers, _trickle_body)
    url = f"http://127.0.0.1:{server.port}"
    message = startup_failure(
        run_bounded([f"--target={url}", "--request-timeout=1"], tmp_path),
        "answers too slowly",
        "HTTP 200",
        "within 1 s",
        "--request-timeout",
    )
    assert "unreachable" not in message and "is running" not in message


def test_silent_server_did_not_answer(servers: list[RawServer], tmp_path: Path) -> None:
    # The full profile probes for 10 s; --request-timeout=1 is the user's bound.
    server = serve(servers, _silent)
    url = f"http://127.0.0.1:{server.port}"
    started = time.monotonic()
    run = run_bounded([f"--target={url}", "--profile=full", "--request-timeout=1"], tmp_path)
    startup_failure(run, "accepted the connection but did not answer", "within 1 s")
    # The silent port is also asked for TLS (bounded by the same second).
    assert time.monotonic() - started < 8.0


def test_nothing_listening_could_not_connect(tmp_path: Path) -> None:
    sock = refused_port()
    try:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        run = run_bounded([f"--target={url}"], tmp_path)
    finally:
        sock.close()
    startup_failure(run, "unreachable", "could not connect", "Connection refused")


def test_connect_timeout_could_not_connect(full_backlog: int, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{full_backlog}"
    run = run_bounded([f"--target={url}", "--request-timeout=1"], tmp_path)
    startup_failure(run, "unreachable", "could not connect within 1 s")


# -- the probe in-process --------------------------------------------------------


def options_for(url: str, tmp_path: Path, probe_timeout: float = 5.0) -> Options:
    profile = dataclasses.replace(PROFILES["quick"], probe_timeout=probe_timeout)
    return Options(
        targets=(parse_target(url),),
        headers=(),
        transport="auto",
        profile=profile,
        strict=False,
        report_dir=tmp_path,
    )


def test_correct_plain_server_costs_one_exchange(servers: list[RawServer], tmp_path: Path) -> None:
    server = serve(servers, _valid_reply)
    check_reachable(options_for(f"http://127.0.0.1:{server.port}", tmp_path))
    assert server.accepted == 1  # no TLS check for a server that answers


def test_plain_server_that_drops_is_judged_not_refused(
    servers: list[RawServer], tmp_path: Path
) -> None:
    # Not TLS: dropping the connection is the target's behaviour, for the suite to judge.
    server = serve(servers, _hang_up)
    started = time.monotonic()
    check_reachable(options_for(f"http://127.0.0.1:{server.port}", tmp_path))
    assert server.accepted == 2  # the probe, then the TLS check
    assert time.monotonic() - started < 3.0


def test_request_timeout_bounds_the_probe(servers: list[RawServer], tmp_path: Path) -> None:
    server = serve(servers, _slow_reply)
    options = options_for(f"http://127.0.0.1:{server.port}", tmp_path, probe_timeout=0.3)
    with pytest.raises(Unreachable, match=r"within 0\.3 s"):
        check_reachable(options)
    check_reachable(options, request_timeout=4.0)  # the user's bound, longer than the profile's


def test_untrusted_certificate_names_the_remedy(
    tls_context: ssl.SSLContext, servers: list[RawServer], tmp_path: Path
) -> None:
    server = serve(servers, tls_port(tls_context, "reset"))
    with pytest.raises(Unreachable, match=r"certificate is not trusted.*SSL_CERT_FILE"):
        check_reachable(options_for(f"https://127.0.0.1:{server.port}", tmp_path))


# -- no log files left behind -------------------------------------------------


def test_embedded_server_leaves_no_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    server = EmbeddedServer()
    server.start()
    try:
        assert list(tmp_path.iterdir()) == []
    finally:
        server.stop()
    broken = EmbeddedServer(args=["--no-such-option"])
    with pytest.raises(EmbeddedError, match="unrecognized arguments"):
        broken.start(timeout=20.0)  # the log still explains a failed start
    assert list(tmp_path.iterdir()) == []


# -- the second transport: not applicable only when the target says it is absent ---------


def _status(status: int, body: bytes = b"") -> RawHandler:
    def handler(conn: socket.socket, stop: threading.Event) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            read_http_request(conn)
            conn.sendall(
                f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + body
            )

    return handler


@pytest.mark.parametrize(
    "scheme, status, body, expected",
    [
        # A WebSocket target whose plain POST is answered with garbage is tested over
        # HTTP (SRV-REPLY judges that), never excused.
        ("ws", 200, b"\xff\xfe not protobuf", None),
        ("ws", 404, b"", NotApplicable),
        ("ws", 405, b"", NotApplicable),
        ("ws", 503, b"", NotJudged),
        ("ws", 500, b"", NotJudged),
        ("ws", 429, b"", NotJudged),
        ("ws", 401, b"", None),
        # An HTTP target refusing the upgrade plainly lacks WebSocket; a server error
        # or throttling does not show that.
        ("http", 404, b"", NotApplicable),
        ("http", 400, b"", NotApplicable),
        ("http", 502, b"", NotJudged),
        ("http", 403, b"", None),
    ],
)
def test_the_other_transport_is_excused_only_when_the_target_says_it_is_absent(
    servers: list[RawServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    scheme: str,
    status: int,
    body: bytes,
    expected: type[Exception] | None,
) -> None:
    monkeypatch.setattr(targets_module, "PROBE_RETRY_WAIT", 0.05)
    server = serve(servers, _status(status, body))
    options = options_for(f"{scheme}://127.0.0.1:{server.port}/v1/opamp", tmp_path, 2.0)
    session = TargetSession(options)
    session.start()
    other = Transport.HTTP if scheme == "ws" else Transport.WS
    outcome = session.unavailable(session.primary, other)
    if expected is None:
        assert outcome is None
    else:
        assert isinstance(outcome, expected), outcome
    if status in (429, 500, 502, 503):
        assert server.accepted == 2  # one more try before leaving it not judged
