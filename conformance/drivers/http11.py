"""A small, strict HTTP/1.1 client connection with one deadline per request.

The HTTP driver sends thousands of requests per run; a general client
(httpx) spent most of each exchange in its own layers and needed a watchdog
thread per request to bound a whole request in time. This connection writes
a request and reads its response over one socket, checks the deadline before
every read, bounds the head and the body, and reports every failure as a
:class:`HttpFailure` naming what went wrong. It parses what RFC 9112 allows a
server to send (status line, header fields, Content-Length, chunked and
close-delimited bodies, 1xx interim responses); anything else is a
:class:`ProtocolFailure`, never a guess.
"""

from __future__ import annotations

import contextlib
import functools
import re
import select
import socket
import ssl
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

#: Longest response head (status line and header fields) accepted, as httpcore's.
MAX_HEAD_BYTES = 100 * 1024
#: Longest chunk-size line accepted (size, extensions and CRLF).
MAX_CHUNK_LINE = 4096
#: A connection idle longer than this is not reused: the server may be closing it.
IDLE_REUSE_SECONDS = 2.0
_READ = 65536
_LENGTH = re.compile(rb"[0-9]{1,18}")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_TARGET = re.compile(r"[^\x00-\x20\x7f]+")
_STATUS = re.compile(rb"HTTP/(\d)\.(\d) (\d{3})(?: [^\r\n]*)?")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
#: Optional whitespace around header values (RFC 9110 OWS).
_BLANK = " \t"
_HEAD_END = re.compile(rb"\r?\n\r?\n")


class HttpFailure(Exception):
    """The request did not produce a complete response."""


class ConnectFailure(HttpFailure):
    """No connection could be opened (refused, unresolvable, TLS refused)."""


class DeadlineFailure(HttpFailure):
    """The deadline passed before the response was complete."""


class DroppedFailure(HttpFailure):
    """The connection was closed or reset before the response was complete."""


class ProtocolFailure(HttpFailure):
    """The peer sent something that is not an HTTP/1.1 response."""


class OversizeFailure(HttpFailure):
    """The response head or body is larger than the caller allows."""


class RequestError(ValueError):
    """Our own request cannot be sent as valid HTTP: a harness error."""


@dataclass(frozen=True)
class Origin:
    """Where requests go: scheme, host and port, plus the Host header value."""

    scheme: str
    host: str
    port: int
    authority: str

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def of(url: str) -> tuple[Origin, str]:
        """The origin of ``url`` and its request target (path and query)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RequestError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        authority = parts.netloc.rpartition("@")[2]
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return Origin(parts.scheme, parts.hostname, port, authority), target


@dataclass(frozen=True)
class Response:
    """A complete response; header names are lower case, repeated fields joined."""

    status: int
    headers: dict[str, str]
    body: bytes
    #: The connection may carry another request (kept alive, body delimited).
    reusable: bool


class PartialResponse(HttpFailure):
    """The head arrived but the body did not: carries the status and headers seen."""

    def __init__(self, cause: HttpFailure, status: int, headers: dict[str, str]) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.status = status
        self.headers = headers


class Connection:
    """One persistent connection to an origin; ``request`` reopens it when needed."""

    def __init__(self, origin: Origin, tls: ssl.SSLContext | None) -> None:
        self.origin = origin
        self.tls = tls
        self._sock: socket.socket | None = None
        self._buffer = bytearray()
        self._idle_since = 0.0

    def close(self) -> None:
        sock, self._sock = self._sock, None
        self._buffer = bytearray()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def request(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        body: bytes | Iterable[bytes],
        *,
        deadline: float,
        max_body: int,
    ) -> Response:
        """Send one request and read its response, all before ``deadline`` (monotonic)."""
        head = _request_head(method, target, self.origin.authority, headers, body)
        try:
            sock = self._usable(deadline)
            sent = self._send(sock, head, body, deadline)
            response = self._receive(sock, method, deadline, max_body, sent)
        except BaseException:
            self.close()
            raise
        if response.reusable:
            self._idle_since = time.monotonic()
        else:
            self.close()
        return response

    # -- connection ------------------------------------------------------------

    def _usable(self, deadline: float) -> socket.socket:
        """The open socket, unless it idled long, or the server closed it (or wrote) meanwhile."""
        if self._sock is not None and (
            self._buffer
            or time.monotonic() - self._idle_since > IDLE_REUSE_SECONDS
            or not _idle_and_open(self._sock)
        ):
            self.close()
        if self._sock is None:
            self._sock = self._connect(deadline)
        return self._sock

    def _connect(self, deadline: float) -> socket.socket:
        origin = self.origin
        try:
            addresses = socket.getaddrinfo(origin.host, origin.port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise ConnectFailure(f"cannot resolve {origin.host}: {exc}") from exc
        sock = _first_connected(addresses, deadline)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if origin.scheme != "https":
            return sock
        assert self.tls is not None
        try:
            sock.settimeout(_left(deadline))
            return self.tls.wrap_socket(sock, server_hostname=origin.host)
        except TimeoutError as exc:
            sock.close()
            raise DeadlineFailure(f"TLS handshake timed out: {exc}") from exc
        except OSError as exc:
            sock.close()
            raise ConnectFailure(f"TLS: {exc}") from exc

    # -- sending ---------------------------------------------------------------

    def _send(
        self, sock: socket.socket, head: bytes, body: bytes | Iterable[bytes], deadline: float
    ) -> str | None:
        """Write the request, or say why not all of it was written.

        A write error is not raised: the answer may be readable all the same.
        A server may also answer before it has read the whole body (a 413 for
        a Content-Length over its limit): sending stops there, and the answer
        is read instead of waiting on a body nobody reads.
        """
        try:
            if isinstance(body, bytes):
                return self._send_watching(sock, memoryview(head + body), deadline)
            sock.settimeout(_left(deadline))
            sock.sendall(head)
            for piece in body:
                sock.settimeout(_left(deadline))
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            sock.settimeout(_left(deadline))
            sock.sendall(b"0\r\n\r\n")
        except TimeoutError as exc:
            raise DeadlineFailure(f"request still being sent: {exc}") from exc
        except OSError as exc:
            return f"{type(exc).__name__} while sending: {exc}"
        return None

    def _send_watching(self, sock: socket.socket, data: memoryview, deadline: float) -> str | None:
        sock.settimeout(_left(deadline))
        data = data[sock.send(data) :]  # a small request goes in one call
        while data:
            readable, writable = _wait(sock, _left(deadline))
            if readable and self._early_answer(sock):
                return f"the server answered after {len(data)} bytes were still unsent"
            if writable:
                sock.settimeout(_left(deadline))
                data = data[sock.send(data[:_READ]) :]
            elif not readable:
                raise DeadlineFailure("request still being sent")
        return None

    def _early_answer(self, sock: socket.socket) -> bool:
        """Whether the peer wrote (or closed) while the request was being sent."""
        if not isinstance(sock, ssl.SSLSocket):
            return True
        data = _read_now(sock)
        if data is None:
            return False  # a TLS record with no data (a session ticket)
        self._buffer += data
        return True

    # -- receiving -------------------------------------------------------------

    def _fill(self, sock: socket.socket, deadline: float, what: str, *, eof: bool = False) -> bool:
        """Append the next bytes the peer sends to the buffer; False at a clean close if ``eof``."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise DeadlineFailure(f"no complete {what} before the deadline")
        sock.settimeout(left)
        try:
            data = sock.recv(_READ)
        except TimeoutError as exc:
            raise DeadlineFailure(f"no complete {what} before the deadline") from exc
        except OSError as exc:
            raise DroppedFailure(f"{type(exc).__name__} while reading the {what}: {exc}") from exc
        if not data:
            if eof:
                return False
            raise DroppedFailure(f"connection closed before the {what} was complete")
        self._buffer += data
        return True

    def _receive(
        self,
        sock: socket.socket,
        method: str,
        deadline: float,
        max_body: int,
        unsent: str | None,
    ) -> Response:
        while True:
            try:
                status, version, headers = self._read_head(sock, deadline)
            except DroppedFailure as exc:
                if unsent is not None:
                    raise DroppedFailure(unsent) from exc
                raise
            if 100 <= status < 200 and status != 101:
                continue  # interim response: the final one follows
            break
        try:
            body, delimited = self._read_body(sock, method, status, headers, deadline, max_body)
        except HttpFailure as exc:
            raise PartialResponse(exc, status, headers) from exc
        connection = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        keep = "keep-alive" in connection if version == (1, 0) else "close" not in connection
        reusable = keep and delimited and unsent is None and not self._buffer
        return Response(status, headers, body, reusable)

    def _read_head(
        self, sock: socket.socket, deadline: float
    ) -> tuple[int, tuple[int, int], dict[str, str]]:
        while not (found := _HEAD_END.search(self._buffer)):
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise OversizeFailure(f"response head over {MAX_HEAD_BYTES} bytes")
            self._fill(sock, deadline, "response head")
        if found.start() > MAX_HEAD_BYTES:
            raise OversizeFailure(f"response head over {MAX_HEAD_BYTES} bytes")
        raw = bytes(self._buffer[: found.start()])
        del self._buffer[: found.end()]
        lines = raw.split(b"\n")
        status_line = lines[0].rstrip(b"\r")
        matched = _STATUS.fullmatch(status_line)
        if matched is None:
            raise ProtocolFailure(f"not an HTTP/1.x status line: {status_line[:80]!r}")
        version = (int(matched.group(1)), int(matched.group(2)))
        headers: dict[str, str] = {}
        key = ""
        for line in lines[1:]:
            text = line.rstrip(b"\r").decode("latin-1")
            if text[:1] in (" ", "\t") and key:  # obs-fold: continues the field above
                folded = text.strip(_BLANK)
                headers[key] = f"{headers[key]} {folded}" if headers[key] else folded
                continue
            name, colon, value = text.partition(":")
            if not colon or not _TOKEN.fullmatch(name):
                raise ProtocolFailure(f"malformed header field: {text[:80]!r}")
            key, value = name.lower(), value.strip(_BLANK)
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        return int(matched.group(3)), version, headers

    def _read_body(
        self,
        sock: socket.socket,
        method: str,
        status: int,
        headers: dict[str, str],
        deadline: float,
        limit: int,
    ) -> tuple[bytes, bool]:
        """The body as sent (still content-encoded) and whether its end was delimited."""
        if method == "HEAD" or status in (101, 204, 304):
            return b"", status != 101
        coding = headers.get("transfer-encoding", "")
        if coding:
            if coding.rsplit(",", 1)[-1].strip().lower() == "chunked":
                return self._read_chunked(sock, deadline, limit), True
            return self._read_to_close(sock, deadline, limit), False
        if "content-length" in headers:
            values = {v.strip() for v in headers["content-length"].split(",")}
            size_text = values.pop().encode("latin-1") if len(values) == 1 else b""
            if not _LENGTH.fullmatch(size_text):
                raise ProtocolFailure(f"bad Content-Length: {headers['content-length'][:80]!r}")
            size = int(size_text)
            if size > limit:
                raise OversizeFailure(f"Content-Length {size} is over the limit of {limit} bytes")
            while len(self._buffer) < size:
                self._fill(sock, deadline, "response body")
            body = bytes(self._buffer[:size])
            del self._buffer[:size]
            return body, True
        return self._read_to_close(sock, deadline, limit), False

    def _read_to_close(self, sock: socket.socket, deadline: float, limit: int) -> bytes:
        # Only a clean close ends such a body: a reset means it was cut short.
        while True:
            if len(self._buffer) > limit:
                raise OversizeFailure(f"more than {limit} bytes on the wire")
            if not self._fill(sock, deadline, "response body", eof=True):
                break
        body = bytes(self._buffer)
        self._buffer.clear()
        return body

    def _read_chunked(self, sock: socket.socket, deadline: float, limit: int) -> bytes:
        pieces: list[bytes] = []
        total = 0
        while True:
            line = self._read_line(sock, deadline, "chunk size")
            size_text = line.split(b";", 1)[0].strip(b" \t")
            if not _CHUNK_SIZE.fullmatch(size_text):
                raise ProtocolFailure(f"bad chunk size line: {line[:80]!r}")
            size = int(size_text, 16)
            if size == 0:
                while self._read_line(sock, deadline, "trailer"):
                    pass  # trailer fields are not used
                return b"".join(pieces)
            total += size
            if total > limit:
                raise OversizeFailure(f"more than {limit} bytes on the wire")
            while len(self._buffer) < size + 2:
                self._fill(sock, deadline, "response body")
            if self._buffer[size : size + 2] != b"\r\n":
                raise ProtocolFailure("chunk data not followed by CRLF")
            pieces.append(bytes(self._buffer[:size]))
            del self._buffer[: size + 2]

    def _read_line(self, sock: socket.socket, deadline: float, what: str) -> bytes:
        while (end := self._buffer.find(b"\n")) < 0:
            if len(self._buffer) > MAX_CHUNK_LINE:
                raise ProtocolFailure(f"{what} line over {MAX_CHUNK_LINE} bytes")
            self._fill(sock, deadline, what)
        line = bytes(self._buffer[:end]).rstrip(b"\r")
        del self._buffer[: end + 1]
        return line


def _wait(sock: socket.socket, seconds: float) -> tuple[bool, bool]:
    """Wait until ``sock`` is readable or writable: (readable, writable)."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLOUT)
        events = 0
        for _, mask in poller.poll(max(0, int(seconds * 1000))):
            events |= mask
        return bool(events & (select.POLLIN | select.POLLHUP | select.POLLERR)), bool(
            events & select.POLLOUT
        )
    readable, writable, _ = select.select([sock], [sock], [], seconds)
    return bool(readable), bool(writable)


def _idle_and_open(sock: socket.socket) -> bool:
    """Whether an idle connection can carry a request: nothing to read, or only TLS records."""
    if not _wait(sock, 0)[0]:
        return True
    # A plain socket is closed, or the peer wrote out of turn; TLS may just be a record.
    return isinstance(sock, ssl.SSLSocket) and _read_now(sock) is None


def _read_now(sock: socket.socket) -> bytes | None:
    """What can be read without waiting; None if a TLS record carried no data, b"" if closed."""
    sock.setblocking(False)
    try:
        return sock.recv(_READ)
    except ssl.SSLWantReadError:
        return None
    except OSError:
        return b""
    finally:
        sock.setblocking(True)


def _first_connected(
    addresses: list[tuple[Any, Any, Any, Any, Any]], deadline: float
) -> socket.socket:
    """A socket connected to the first address that accepts, each tried within the deadline."""
    failure: OSError | None = None
    for family, kind, proto, _, address in addresses:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(_left(deadline))
            sock.connect(address)
        except TimeoutError as exc:
            sock.close()
            raise DeadlineFailure(f"connect timed out: {exc}") from exc
        except OSError as exc:
            sock.close()
            failure = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    detail = (str(failure) or type(failure).__name__) if failure else "no address"
    raise ConnectFailure(detail)


def _left(deadline: float) -> float:
    """Seconds until ``deadline``; a deadline already passed fails at once."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlineFailure("deadline passed")
    return left


def _request_head(
    method: str,
    target: str,
    authority: str,
    headers: Sequence[tuple[str, str]],
    body: bytes | Iterable[bytes],
) -> bytes:
    """The request line and header fields; refuses what is not valid HTTP."""
    if not _TOKEN.fullmatch(method):
        raise RequestError(f"invalid method {method!r}")
    if not _TARGET.fullmatch(target):
        raise RequestError(f"invalid request target {target!r}")
    names = {name.lower() for name, _ in headers}
    lines = [f"{method} {target} HTTP/1.1"]
    if "host" not in names:
        lines.append(f"Host: {authority}")
    for name, value in headers:
        if not _TOKEN.fullmatch(name):
            raise RequestError(f"invalid header name {name!r}")
        if _BAD_VALUE.search(value) or value != value.strip(_BLANK):
            raise RequestError(f"invalid value for header {name!r}")
        lines.append(f"{name}: {value}")
    if isinstance(body, bytes):
        if "content-length" not in names and (body or method in ("POST", "PUT", "PATCH")):
            lines.append(f"Content-Length: {len(body)}")
    elif "transfer-encoding" not in names:
        lines.append("Transfer-Encoding: chunked")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
