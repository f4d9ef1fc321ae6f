"""OpAMP over plain HTTP: one POST per AgentToServer, one ServerToAgent back."""

from __future__ import annotations

import functools
import ssl
import uuid
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from conformance import __version__
from conformance.drivers.base import Driver
from conformance.drivers.exchange import Attempt, Exchange, Problem
from conformance.drivers.http11 import (
    ConnectFailure,
    Connection,
    DeadlineFailure,
    HttpFailure,
    Origin,
    OversizeFailure,
    PartialResponse,
    remember,
)
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
#: How the detail of a TIMEOUT exchange starts when no connection was open by the deadline.
NO_CONNECTION = "no connection within"
USER_AGENT = f"fleet-conformance/{__version__}"
#: Header combinations a driver remembers before starting over.
_MERGED_KEPT = 64
_HeadersKey = tuple[str | None, tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]


class HttpDriver(Driver):
    """A half-duplex OpAMP HTTP client that turns every outcome into an :class:`Exchange`.

    ``timeout`` bounds each request as a whole (connect, send and the full
    body); ``max_reply_bytes`` bounds the body after decompression. One
    persistent connection is kept per origin (:mod:`conformance.drivers.http11`).
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
        self._connections: dict[Origin, Connection] = {}
        #: Merged header fields by content type, driver headers and request headers: a
        #: run repeats the same few combinations thousands of times.
        self._merged: dict[_HeadersKey, list[tuple[str, str]]] = {}

    def _connection(self, origin: Origin) -> Connection:
        connection = self._connections.get(origin)
        if connection is None:
            tls = _tls_context() if origin.scheme == "https" else None
            connection = self._connections[origin] = Connection(origin, tls)
        return connection

    def close(self) -> None:
        """Close the connections; the next send opens a new one."""
        connections, self._connections = self._connections, {}
        for connection in connections.values():
            connection.close()

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
            extra[UID_HEADER] = _uid_text(msg.instance_uid)
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
        A request we cannot send as valid HTTP raises :class:`RequestError`:
        that is a harness error, never the target's.
        """
        limit = self.timeout if timeout is None else timeout
        all_headers = self._headers(content_type, headers)
        origin, target = Origin.of(url or self.url)
        attempt = Attempt(TRANSPORT, sent, len(body))
        try:
            response = self._connection(origin).request(
                method,
                target,
                all_headers,
                _pieces(body) if chunked else body,
                deadline=attempt.started + limit,
                max_body=self.max_reply_bytes,
            )
        except PartialResponse as exc:
            return attempt.finish(
                status=exc.status, headers=exc.headers, **_failure(exc.cause, limit)
            )
        except HttpFailure as exc:
            return attempt.finish(**_failure(exc, limit))
        status, resp_headers, raw = response.status, response.headers, response.body
        if not decode:
            return attempt.finish(
                status=status, headers=resp_headers, raw=raw, reply_bytes=len(raw)
            )
        return _decode_reply(attempt, status, resp_headers, raw, self.max_reply_bytes)

    def _headers(
        self, content_type: str | None, extra: Mapping[str, str] | None
    ) -> list[tuple[str, str]]:
        """Our fields, then the driver's, then the request's (later ones replace earlier)."""
        key = (content_type, tuple(self.headers), tuple(extra.items()) if extra else ())
        merged = self._merged.get(key)
        if merged is None:
            ours: dict[str, str] = {"Accept-Encoding": "gzip", "User-Agent": USER_AGENT}
            if content_type is not None:
                ours["Content-Type"] = content_type
            merged = _merge(ours, self.headers, extra)
            remember(self._merged, key, merged, _MERGED_KEPT)
        return merged


@functools.lru_cache(maxsize=1024)
def _uid_text(uid: bytes) -> str:
    return str(uuid.UUID(bytes=uid))


def _merge(
    base: dict[str, str], *layers: Sequence[tuple[str, str]] | Mapping[str, str] | None
) -> list[tuple[str, str]]:
    """Later layers replace earlier fields of the same name (case-insensitively)."""
    fields = {name.lower(): (name, value) for name, value in base.items()}
    for layer in layers:
        items = layer.items() if isinstance(layer, Mapping) else (layer or ())
        for name, value in items:
            fields[name.lower()] = (name, value)
    return list(fields.values())


def _failure(exc: HttpFailure, limit: float) -> dict[str, Any]:
    """The problem and detail an HTTP failure is recorded with."""
    if isinstance(exc, DeadlineFailure):
        if not exc.connected:
            return {"problem": Problem.TIMEOUT, "detail": f"{NO_CONNECTION} {limit:g} s"}
        return {"problem": Problem.TIMEOUT, "detail": f"no complete answer after {limit:g} s"}
    if isinstance(exc, ConnectFailure):
        return {"problem": Problem.CONNECT, "detail": str(exc)}
    if isinstance(exc, OversizeFailure):
        return {"problem": Problem.TOO_LARGE, "detail": str(exc)}
    return {"problem": Problem.DISCONNECTED, "detail": f"{type(exc).__name__}: {exc}"}


def _pieces(body: bytes) -> list[bytes]:
    """The body in two chunks (an empty chunk would end the body early)."""
    half = len(body) // 2
    return [piece for piece in (body[:half], body[half:]) if piece]


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for every driver: building one costs tens of milliseconds."""
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


def _header(headers: Mapping[str, str], name: str) -> str:
    """A field by its lower-case name (http11 gives lower-case names)."""
    return headers.get(name, "")


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
