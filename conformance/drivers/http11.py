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

The socket stays non-blocking once connected: an exchange costs four system
calls (a zero-time poll: is the idle connection still open? a send, a poll
until the answer comes, a receive), where per-read socket timeouts cost a
mode switch and another poll on every call.
"""

from __future__ import annotations

import contextlib
import functools
import math
import re
import select
import socket
import ssl
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urlsplit

#: Longest response head (status line and header fields) accepted, as httpcore's.
MAX_HEAD_BYTES = 100 * 1024
#: Longest chunk-size line accepted (size, extensions and CRLF).
MAX_CHUNK_LINE = 4096
#: A connection idle longer than this is not reused: the server may be closing it.
IDLE_REUSE_SECONDS = 2.0
_READ = 65536
_LENGTH = re.compile(r"[0-9]{1,18}")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_TARGET = re.compile(r"[^\x00-\x20\x7f]+")
_STATUS = re.compile(r"HTTP/([0-9])\.([0-9]) ([0-9]{3})(?: [^\r\n]*)?")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
#: Optional whitespace around header values (RFC 9110 OWS).
_BLANK = " \t"
_HEAD_END = re.compile(rb"\r?\n\r?\n")
#: Request heads longer than this are not cached, and the cache starts over when full;
#: the same holds for parsed response heads (a server repeats the same few).
_CACHED_HEAD_BYTES = 4096
_HEADS_KEPT = 256
#: A non-blocking call that could not proceed yet (plain or TLS socket).
_NOT_YET = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
K = TypeVar("K")
V = TypeVar("V")


class HttpFailure(Exception):
    """The request did not produce a complete response."""


class ConnectFailure(HttpFailure):
    """No connection could be opened (refused, unresolvable, TLS refused)."""


class DeadlineFailure(HttpFailure):
    """The deadline passed before the response was complete.

    ``connected`` says whether a TCP connection was open by then: a deadline
    that passes while connecting means the server could not be reached.
    """

    def __init__(self, message: str, *, connected: bool = True) -> None:
        super().__init__(message)
        self.connected = connected


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


class Response(NamedTuple):
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
        #: Watches the open socket for input (None where select.poll is missing).
        self._poller: Any = None

    def close(self) -> None:
        sock, self._sock = self._sock, None
        self._poller = None
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
            or not self._idle_and_open(self._sock)
        ):
            self.close()
        if self._sock is None:
            self._sock = self._connect(deadline)
            if hasattr(select, "poll"):
                self._poller = select.poll()
                self._poller.register(self._sock, select.POLLIN)
        return self._sock

    def _readable(self, sock: socket.socket, seconds: float) -> bool:
        """Wait up to ``seconds`` until ``sock`` has something to read (or was closed)."""
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True  # decrypted bytes already wait in the TLS layer
        if self._poller is not None:
            return bool(self._poller.poll(_milliseconds(seconds)))
        return bool(select.select([sock], [], [], seconds)[0])

    def _idle_and_open(self, sock: socket.socket) -> bool:
        """Whether an idle connection can carry a request: nothing to read, or only TLS
        records. Anything else means the peer closed it or wrote out of turn."""
        if not self._readable(sock, 0):
            return True
        return isinstance(sock, ssl.SSLSocket) and not sock.pending() and _read_now(sock) is None

    def _connect(self, deadline: float) -> socket.socket:
        origin = self.origin
        try:
            addresses = socket.getaddrinfo(origin.host, origin.port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise ConnectFailure(f"cannot resolve {origin.host}: {exc}") from exc
        sock = _first_connected(addresses, deadline)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if origin.scheme != "https":
            sock.setblocking(False)
            return sock
        assert self.tls is not None
        try:
            sock.settimeout(_left(deadline))
            tls = self.tls.wrap_socket(sock, server_hostname=origin.host)
            tls.setblocking(False)
            return tls
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
            pieces = [b"%x\r\n%s\r\n" % (len(piece), piece) for piece in body]
            for data in (head, *pieces, b"0\r\n\r\n"):
                if unsent := self._send_watching(sock, memoryview(data), deadline):
                    return unsent
        except OSError as exc:
            return f"{type(exc).__name__} while sending: {exc}"
        return None

    def _send_watching(self, sock: socket.socket, data: memoryview, deadline: float) -> str | None:
        while data:
            try:
                data = data[sock.send(data) :]  # a small request goes in one call
                continue
            except _NOT_YET:
                pass
            readable = _wait(sock, _time_left(deadline, "request still being sent"))[0]
            if readable and self._early_answer(sock):
                return f"the server answered after {len(data)} bytes were still unsent"
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
        while True:
            left = _time_left(deadline, f"no complete {what} before the deadline")
            if not self._readable(sock, left):
                continue  # the deadline is checked again first
            try:
                data = sock.recv(_READ)
                break
            except ssl.SSLWantWriteError:
                _wait(sock, left)  # TLS needs to write first (renegotiation)
            except _NOT_YET:
                pass  # a TLS record without data, or a spurious wake-up
            except OSError as exc:
                raise DroppedFailure(
                    f"{type(exc).__name__} while reading the {what}: {exc}"
                ) from exc
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
        field = headers.get("connection")
        connection = {t.strip().lower() for t in field.split(",")} if field else set()
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
        parsed = _PARSED_HEADS.get(raw)
        if parsed is None:
            parsed = _parse_head(raw)
            if len(raw) <= _CACHED_HEAD_BYTES:
                remember(_PARSED_HEADS, raw, parsed)
        status, version, headers = parsed
        return status, version, dict(headers)  # the caller may keep and change it

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
            size = _content_length(headers["content-length"])
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


def remember(cache: dict[K, V], key: K, value: V, kept: int = _HEADS_KEPT) -> None:
    """Keep ``value`` in a bounded cache; a full cache starts over (the hot keys come back)."""
    if len(cache) >= kept:
        cache.clear()
    cache[key] = value


def _milliseconds(seconds: float) -> int:
    # Rounded up: a wait rounded down to 0 ms would spin until the deadline.
    return max(0, math.ceil(seconds * 1000))


def _wait(sock: socket.socket, seconds: float) -> tuple[bool, bool]:
    """Wait until ``sock`` is readable or writable: (readable, writable)."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLOUT)
        events = 0
        for _, mask in poller.poll(_milliseconds(seconds)):
            events |= mask
        return bool(events & (select.POLLIN | select.POLLHUP | select.POLLERR)), bool(
            events & select.POLLOUT
        )
    readable, writable, _ = select.select([sock], [sock], [], seconds)
    return bool(readable), bool(writable)


def _parse_head(raw: bytes) -> tuple[int, tuple[int, int], dict[str, str]]:
    """Status, version and fields of a response head (without its blank line)."""
    lines = raw.decode("latin-1").split("\n")
    status_line = lines[0].rstrip("\r")
    matched = _STATUS.fullmatch(status_line)
    if matched is None:
        raw_line = status_line.encode("latin-1")
        raise ProtocolFailure(f"not an HTTP/1.x status line: {raw_line[:80]!r}")
    version = (int(matched.group(1)), int(matched.group(2)))
    headers: dict[str, str] = {}
    key = ""
    for line in lines[1:]:
        text = line.rstrip("\r")
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


def _content_length(field: str) -> int:
    """The body size a Content-Length field gives: digits, or the same digits repeated."""
    if field.isascii() and field.isdigit() and len(field) <= 18:
        return int(field)  # the usual case, without the careful path
    values = {v.strip(_BLANK) for v in field.split(",")}
    text = values.pop() if len(values) == 1 else ""
    if not _LENGTH.fullmatch(text):
        raise ProtocolFailure(f"bad Content-Length: {field[:80]!r}")
    return int(text)


def _read_now(sock: socket.socket) -> bytes | None:
    """What a non-blocking socket has now; None if a TLS record carried no data, b"" if closed."""
    try:
        return sock.recv(_READ)
    except _NOT_YET:
        return None
    except OSError:
        return b""


def _first_connected(
    addresses: list[tuple[Any, Any, Any, Any, Any]], deadline: float
) -> socket.socket:
    """A socket connected to the first address that accepts, each tried within the deadline."""
    failure: OSError | None = None
    for family, kind, proto, _, address in addresses:
        left = deadline - time.monotonic()
        if left <= 0:
            raise DeadlineFailure("connect timed out: deadline passed", connected=False)
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(left)
            sock.connect(address)
        except TimeoutError as exc:
            sock.close()
            raise DeadlineFailure(f"connect timed out: {exc}", connected=False) from exc
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


def speaks_tls(host: str, port: int, timeout: float) -> bool:
    """Whether ``host:port`` answers a TLS ClientHello in TLS, within ``timeout`` seconds.

    The certificate is not checked: this only tells a TLS port from a plain
    one (a completed handshake, or a TLS alert from the peer). A plain HTTP
    server closes, answers in HTTP or waits: all of these are ``False``.
    """
    deadline = time.monotonic() + timeout
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        sock = _first_connected(addresses, deadline)
    except (OSError, HttpFailure):
        return False
    try:
        sock.setblocking(False)
        tls = context.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
    except OSError:
        sock.close()
        return False
    with tls:
        while (left := deadline - time.monotonic()) > 0:
            try:
                tls.do_handshake()
                return True
            except ssl.SSLWantReadError:
                select.select([tls], [], [], left)
            except ssl.SSLWantWriteError:
                select.select([], [tls], [], left)
            except ssl.SSLError as exc:
                return "ALERT" in str(exc.reason or "").upper()  # the peer spoke TLS
            except OSError:
                return False
    return False


def _left(deadline: float) -> float:
    """Seconds until ``deadline``; a deadline already passed fails at once."""
    return _time_left(deadline, "deadline passed")


def _time_left(deadline: float, failure: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlineFailure(failure)
    return left


def _request_head(
    method: str,
    target: str,
    authority: str,
    headers: Sequence[tuple[str, str]],
    body: bytes | Iterable[bytes],
) -> bytes:
    """The request line and header fields; refuses what is not valid HTTP."""
    key = (method, target, authority, tuple(headers))
    cached = _HEADS.get(key)
    if cached is None:
        cached = _head_start(*key)
        if len(cached[0]) <= _CACHED_HEAD_BYTES:
            remember(_HEADS, key, cached)
    start, names = cached
    if isinstance(body, bytes):
        if "content-length" not in names and (body or method in ("POST", "PUT", "PATCH")):
            return start + b"Content-Length: %d\r\n\r\n" % len(body)
    elif "transfer-encoding" not in names:
        return start + b"Transfer-Encoding: chunked\r\n\r\n"
    return start + b"\r\n"


def _head_start(
    method: str, target: str, authority: str, headers: tuple[tuple[str, str], ...]
) -> tuple[bytes, frozenset[str]]:
    """The validated request line and fields (each ending in CRLF) and the field names."""
    if not _TOKEN.fullmatch(method):
        raise RequestError(f"invalid method {method!r}")
    if not _TARGET.fullmatch(target):
        raise RequestError(f"invalid request target {target!r}")
    names = frozenset(name.lower() for name, _ in headers)
    lines = [f"{method} {target} HTTP/1.1"]
    if "host" not in names:
        lines.append(f"Host: {authority}")
    for name, value in headers:
        if not _TOKEN.fullmatch(name):
            raise RequestError(f"invalid header name {name!r}")
        if _BAD_VALUE.search(value) or value != value.strip(_BLANK):
            raise RequestError(f"invalid value for header {name!r}")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n").encode("latin-1"), names


#: Validated request heads by request line and fields: validating is most of building one.
_HEADS: dict[tuple[str, str, str, tuple[tuple[str, str], ...]], tuple[bytes, frozenset[str]]] = {}
#: Parsed response heads by their bytes.
_PARSED_HEADS: dict[bytes, tuple[int, tuple[int, int], dict[str, str]]] = {}
