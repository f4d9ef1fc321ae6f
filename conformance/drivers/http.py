"""OpAMP over plain HTTP: one POST per AgentToServer, one ServerToAgent back."""

from __future__ import annotations

import contextlib
import functools
import socket
import ssl
import threading
import time
import uuid
import zlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx

from conformance.drivers.base import Driver
from conformance.drivers.exchange import Attempt, Exchange, Problem
from conformance.wire import (
    CONTENT_TYPE,
    DEFAULT_MAX_MESSAGE_BYTES,
    UID_HEADER,
    AgentToServer,
    DecodeError,
    TooLarge,
    gunzip_bounded,
    gzip_bytes,
    parse_server_to_agent,
)

TRANSPORT = "http"


class HttpDriver(Driver):
    """A half-duplex OpAMP HTTP client that turns every outcome into an :class:`Exchange`.

    ``timeout`` bounds each request as a whole (connect, send and the full
    body); ``max_reply_bytes`` bounds the body after decompression.
    """

    transport = TRANSPORT

    def __init__(
        self,
        url: str,
        headers: Sequence[tuple[str, str]] = (),
        *,
        timeout: float = 5.0,
        max_reply_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        super().__init__(url, headers, timeout=timeout, max_reply_bytes=max_reply_bytes)
        self._client: httpx.Client | None = None
        # httpx timeouts bound each read, not the whole request: a server that
        # trickles its headers would never time out. The sockets this driver
        # opens are kept so a watchdog can cut a request at its deadline.
        self._sockets: list[socket.socket] = []

    def _trace(self, event: str, info: Mapping[str, Any]) -> None:
        """httpcore trace hook: remember each socket the pool opens."""
        if event.endswith((".connect_tcp.complete", ".start_tls.complete")):
            sock = info["return_value"].get_extra_info("socket")
            if isinstance(sock, socket.socket):
                self._sockets = [s for s in self._sockets if s.fileno() != -1] + [sock]

    def _cut(self, fired: threading.Event) -> None:
        """Deadline reached: shut the driver's sockets down so a blocked read returns."""
        fired.set()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _http(self) -> httpx.Client:
        if self._client is None:
            # TCP_NODELAY: httpx writes headers and body separately; with Nagle's
            # algorithm the body waits for the ACK of the headers (benchmarks/).
            transport = httpx.HTTPTransport(
                verify=_tls_context(),
                socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            )
            self._client = httpx.Client(
                timeout=httpx.Timeout(self.timeout),
                follow_redirects=False,
                trust_env=False,
                transport=transport,
            )
        return self._client

    def close(self) -> None:
        """Close the connection; the next send opens a new one."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def send(
        self,
        msg: AgentToServer,
        *,
        gzip: bool = False,
        chunked: bool = False,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        uid_header: bool = True,
    ) -> Exchange:
        """POST ``msg`` (optionally gzip-compressed, optionally chunked) and decode the reply."""
        body = msg.SerializeToString()
        extra: dict[str, str] = {}
        if uid_header and len(msg.instance_uid) == 16:
            extra[UID_HEADER] = str(uuid.UUID(bytes=msg.instance_uid))
        if gzip:
            body = gzip_bytes(body)
            extra["Content-Encoding"] = "gzip"
        extra.update(headers or {})
        return self.send_raw(body, headers=extra, timeout=timeout, sent=msg, chunked=chunked)

    def send_raw(
        self,
        body: bytes,
        *,
        headers: Mapping[str, str] | None = None,
        content_type: str | None = CONTENT_TYPE,
        timeout: float | None = None,
        sent: AgentToServer | None = None,
        method: str = "POST",
        chunked: bool = False,
        url: str | None = None,
        decode: bool = True,
    ) -> Exchange:
        """Send arbitrary bytes (hostile input too) and observe the answer.

        ``chunked`` sends the body in two pieces with ``Transfer-Encoding:
        chunked`` and no Content-Length, as opamp-go's client does. ``url``
        overrides the driver's endpoint; with ``decode=False`` the body is
        kept as received in ``Exchange.raw`` instead of decoded as OpAMP.
        """
        limit = self.timeout if timeout is None else timeout
        all_headers: dict[str, str] = {"Accept-Encoding": "gzip"}
        if content_type is not None:
            all_headers["Content-Type"] = content_type
        all_headers.update(self.headers)
        all_headers.update(headers or {})
        attempt = Attempt(TRANSPORT, sent, len(body))
        deadline = attempt.started + limit
        status: int | None = None
        resp_headers: dict[str, str] = {}
        fired = threading.Event()
        watchdog = threading.Timer(limit, self._cut, args=(fired,))
        watchdog.daemon = True
        try:
            request = self._http().build_request(
                method,
                url or self.url,
                content=_pieces(body) if chunked else body,
                headers=all_headers,
                timeout=httpx.Timeout(limit),
                extensions={"trace": self._trace},
            )
            watchdog.start()
            response = self._http().send(request, stream=True)
            try:
                status = response.status_code
                resp_headers = dict(response.headers.items())
                raw = _read_bounded(response, deadline, self.max_reply_bytes)
            finally:
                response.close()
        except _Overrun as exc:
            return attempt.finish(
                status=status, headers=resp_headers, problem=exc.problem, detail=exc.detail
            )
        except httpx.TimeoutException as exc:
            return attempt.finish(
                status=status,
                headers=resp_headers,
                problem=Problem.TIMEOUT,
                detail=f"{type(exc).__name__} after {limit:g} s",
            )
        except httpx.LocalProtocolError:
            raise  # our own request was not valid HTTP: a harness error, never the target's
        except httpx.ConnectError as exc:
            return attempt.finish(problem=Problem.CONNECT, detail=str(exc) or type(exc).__name__)
        except (httpx.TransportError, httpx.DecodingError) as exc:
            if fired.is_set():
                return attempt.finish(
                    status=status,
                    headers=resp_headers,
                    problem=Problem.TIMEOUT,
                    detail=f"no complete answer after {limit:g} s",
                )
            return attempt.finish(
                status=status,
                headers=resp_headers,
                problem=Problem.DISCONNECTED,
                detail=f"{type(exc).__name__}: {exc}",
            )
        finally:
            watchdog.cancel()
        if not decode:
            return attempt.finish(
                status=status, headers=resp_headers, raw=raw, reply_bytes=len(raw)
            )
        return _decode_reply(attempt, status, resp_headers, raw, self.max_reply_bytes)


def _pieces(body: bytes) -> Iterator[bytes]:
    """The body in two chunks: httpx streams an iterator with chunked encoding."""
    half = len(body) // 2
    for piece in (body[:half], body[half:]):
        if piece:  # an empty chunk would end the body early
            yield piece


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for every driver: building one costs tens of milliseconds."""
    return ssl.create_default_context()


class _Overrun(Exception):
    def __init__(self, problem: Problem, detail: str) -> None:
        super().__init__(detail)
        self.problem = problem
        self.detail = detail


def _read_bounded(response: httpx.Response, deadline: float, limit: int) -> bytes:
    """Read the raw (still encoded) body, stopping at the deadline or the size limit."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_raw():
        size += len(chunk)
        if size > limit:
            raise _Overrun(Problem.TOO_LARGE, f"more than {limit} bytes on the wire")
        chunks.append(chunk)
        if time.monotonic() > deadline:
            raise _Overrun(Problem.TIMEOUT, f"body still arriving after {size} bytes")
    return b"".join(chunks)


def _header(headers: Mapping[str, str], name: str) -> str:
    return next((v for k, v in headers.items() if k.lower() == name), "")


def _decode_reply(
    attempt: Attempt, status: int, headers: dict[str, str], raw: bytes, limit: int
) -> Exchange:
    """Turn a received body into a ServerToAgent, or say why it is not one."""

    done = functools.partial(attempt.finish, status=status, headers=headers)

    if not 200 <= status < 300 and CONTENT_TYPE not in _header(headers, "content-type"):
        # An error status with a non-protobuf body (JSON, text, nothing): the
        # status is the observation; the start of the body is kept as a detail.
        return done(reply_bytes=len(raw), detail=raw[:200].decode("utf-8", "replace"))
    encoding = _header(headers, "content-encoding").strip().lower()
    body = raw
    if encoding == "gzip":
        try:
            body = gunzip_bounded(raw, limit)
        except TooLarge as exc:
            return done(reply_bytes=len(raw), problem=Problem.TOO_LARGE, detail=str(exc))
        except (zlib.error, EOFError, OSError) as exc:
            return done(reply_bytes=len(raw), problem=Problem.UNDECODABLE, detail=f"gzip: {exc}")
    elif encoding not in ("", "identity"):
        return done(
            reply_bytes=len(raw),
            problem=Problem.UNDECODABLE,
            detail=f"Content-Encoding {encoding!r} was not asked for",
        )
    if not body:
        return done(problem=Problem.EMPTY)
    try:
        reply = parse_server_to_agent(body)
    except DecodeError as exc:
        return done(reply_bytes=len(body), problem=Problem.UNDECODABLE, detail=str(exc))
    return done(reply=reply, reply_bytes=len(body))
