"""OpAMP over WebSocket: binary messages, each a varint header (0) and protobuf bytes."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from typing import Any

from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
    PayloadTooBig,
)
from websockets.frames import Close, CloseCode
from websockets.protocol import State
from websockets.sync.client import ClientConnection, reconnect

from conformance.drivers.base import Driver
from conformance.drivers.exchange import Attempt, Exchange, Problem
from conformance.wire import (
    DEFAULT_MAX_MESSAGE_BYTES,
    AgentToServer,
    DecodeError,
    FramingError,
    parse_server_to_agent,
    ws_frame,
    ws_unframe,
)

TRANSPORT = "ws"
#: The status recorded for exchanges on an open socket.
SWITCHING = 101


class WsDriver(Driver):
    """A WebSocket OpAMP client; connects lazily and can reconnect or close.

    Every call is bounded by ``timeout``. The reply to a message is the next
    message the server sends on the socket.

    A server may close a socket between messages (a load balancer recycling
    connections, a server closing after so many replies): as an agent would,
    the next message then goes on a new socket, and the exchange's detail says
    so. When a clean close (1000 or 1001) from the server crosses a message,
    the message went unread: it is sent once more on a new socket.
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
        self._conn: ClientConnection | None = None
        #: How many sockets this driver opened.
        self.connects = 0

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def connect(
        self, headers: Sequence[tuple[str, str]] | None = None, *, sent: AgentToServer | None = None
    ) -> Exchange:
        """(Re)open the socket; the Exchange says whether the upgrade succeeded."""
        self.close()
        attempt = Attempt(TRANSPORT, sent, 0)
        try:
            self._conn = _connect_without_redirects(
                self.url,
                additional_headers=list(self.headers if headers is None else headers),
                open_timeout=self.timeout,
                close_timeout=min(self.timeout, 2.0),
                max_size=self.max_reply_bytes,
                compression=None,
                proxy=None,
                ping_interval=None,
            )
        except InvalidStatus as exc:
            return attempt.finish(
                status=exc.response.status_code,
                headers=dict(exc.response.headers.raw_items()),
                problem=Problem.REJECTED,
                detail=f"HTTP {exc.response.status_code}",
            )
        except TimeoutError as exc:
            return attempt.finish(problem=Problem.TIMEOUT, detail=f"opening handshake: {exc}")
        except (OSError, InvalidHandshake, InvalidURI) as exc:
            return attempt.finish(problem=Problem.CONNECT, detail=f"{type(exc).__name__}: {exc}")
        self.connects += 1
        return attempt.finish(status=SWITCHING)

    def close(self) -> None:
        """Close the socket if open; never raises."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # a broken socket must not raise here
                conn.close()

    def send(
        self, msg: AgentToServer, *, header: int = 0, timeout: float | None = None
    ) -> Exchange:
        """Send ``msg`` framed with ``header`` and wait for the next server message."""
        return self.send_raw(ws_frame(msg.SerializeToString(), header), timeout=timeout, sent=msg)

    def send_raw(
        self,
        data: bytes | str,
        *,
        timeout: float | None = None,
        sent: AgentToServer | None = None,
    ) -> Exchange:
        """Send one WebSocket message as is (bytes: binary, str: text) and read the answer."""
        limit = self.timeout if timeout is None else timeout
        if self._conn is None:
            opened = self.connect(sent=sent)
            if self._conn is None:
                return opened
        conn = self._conn
        unsolicited = _drain(conn)
        notes: list[str] = []
        if conn.state is not State.OPEN:
            # The server closed the socket while it was idle: start a new one.
            notes.append(f"the server had closed the socket ({_close_text(conn)}); reopened")
            opened = self.connect(sent=sent)
            if self._conn is None:
                return _noted(opened, notes)
            conn = self._conn
        attempt = Attempt(TRANSPORT, sent, len(data))
        try:
            try:
                conn.send(data)
                answer = conn.recv(timeout=limit)
            except ConnectionClosed as exc:
                if not _recycled(exc):
                    raise
                # The server's clean close crossed the message: it was not read.
                notes.append(
                    f"the server closed the socket ({_close_text(conn)}) as the"
                    " message was sent; sent again on a new socket"
                )
                opened = self.connect(sent=sent)
                if self._conn is None:
                    return _noted(opened, notes)
                conn = self._conn
                conn.send(data)
                answer = conn.recv(timeout=limit)
        except TimeoutError:
            if conn.state is State.OPEN:
                # A late answer would be taken for the reply to the next
                # message: start the next exchange on a fresh socket instead.
                self.close()
                timed_out = attempt.finish(
                    status=SWITCHING,
                    problem=Problem.TIMEOUT,
                    detail=f"no message within {limit:g} s",
                )
                return _noted(timed_out, notes)
            # We already failed the connection (sent a close frame after a
            # protocol error or an oversized message) and the server has not
            # closed TCP yet: the socket is gone, not silent.
            closing = conn.protocol.close_sent
            self.close()
            return _noted(_dropped(attempt, closing, f"connection closing: sent {closing}"), notes)
        except PayloadTooBig as exc:
            self.close()
            big = attempt.finish(status=SWITCHING, problem=Problem.TOO_LARGE, detail=str(exc))
            return _noted(big, notes)
        except (ConnectionClosed, OSError) as exc:
            self.close()
            sent_close = exc.sent if isinstance(exc, ConnectionClosed) else None
            dropped = _dropped(attempt, sent_close, f"{type(exc).__name__}: {exc}")
            return _noted(dropped, notes)
        exchange = _decode_message(attempt, answer)
        if unsolicited:
            notes.insert(0, f"{unsolicited} unsolicited server message(s) set aside before sending")
        return _noted(exchange, notes)


#: At most this many queued server messages are set aside before a send.
_MAX_DRAIN = 64
#: Close codes of a server ending a socket on purpose, with nothing wrong (RFC 6455 7.4.1).
_CLEAN_CLOSES = frozenset({CloseCode.NORMAL_CLOSURE, CloseCode.GOING_AWAY})


def _recycled(exc: ConnectionClosed) -> bool:
    """Whether the server closed the socket first, cleanly (1000 or 1001)."""
    return (
        exc.rcvd is not None and exc.rcvd.code in _CLEAN_CLOSES and exc.rcvd_then_sent is not False
    )


def _close_text(conn: ClientConnection) -> str:
    """The close the server sent, for the transcript."""
    close = conn.protocol.close_rcvd
    if close is None:
        return "no close frame"
    reason = f" {close.reason!r}" if close.reason else ""
    return f"close {close.code}{reason}"


def _noted(exchange: Exchange, notes: list[str]) -> Exchange:
    """``exchange`` with ``notes`` added to its detail."""
    if not notes:
        return exchange
    text = "; ".join(notes)
    return dataclasses.replace(
        exchange, detail=f"{exchange.detail}; {text}" if exchange.detail else text
    )


def _drain(conn: ClientConnection) -> int:
    """Set aside messages the server pushed on its own, so the next one read is the reply."""
    count = 0
    while count < _MAX_DRAIN:
        try:
            conn.recv(timeout=0)
        except (TimeoutError, ConnectionClosed, OSError):
            break
        count += 1
    return count


def _dropped(attempt: Attempt, sent_close: Close | None, detail: str) -> Exchange:
    """The socket closed while waiting for an answer.

    websockets reports an oversized message by closing with 1009 and raising
    ConnectionClosedError, not PayloadTooBig: that close code means TOO_LARGE.
    """
    if sent_close is not None and sent_close.code == CloseCode.MESSAGE_TOO_BIG:
        return attempt.finish(status=SWITCHING, problem=Problem.TOO_LARGE, detail=detail)
    return attempt.finish(status=SWITCHING, problem=Problem.DISCONNECTED, detail=detail)


def _decode_message(attempt: Attempt, answer: bytes | str) -> Exchange:
    """Unframe and decode one server message, or say why it is not a ServerToAgent."""
    size = len(answer)
    if isinstance(answer, str):
        return attempt.finish(status=SWITCHING, problem=Problem.NOT_BINARY, reply_bytes=size)
    try:
        framed = ws_unframe(answer)
    except FramingError as exc:
        return attempt.finish(
            status=SWITCHING, problem=Problem.FRAMING, detail=str(exc), reply_bytes=size
        )
    if framed.header != 0:
        return attempt.finish(
            status=SWITCHING,
            problem=Problem.FRAMING,
            detail=f"header {framed.header}, expected 0",
            reply_bytes=size,
        )
    try:
        reply = parse_server_to_agent(framed.payload)
    except DecodeError as exc:
        return attempt.finish(
            status=SWITCHING, problem=Problem.UNDECODABLE, detail=str(exc), reply_bytes=size
        )
    return attempt.finish(status=SWITCHING, reply=reply, reply_bytes=size)


class _Direct(reconnect):
    """websockets' opening handshake, except that a redirect is an answer, not followed:
    the HTTP driver follows none either, so a 3xx is recorded as the upgrade's answer."""

    def process_redirect(self, exc: Exception) -> Exception | str:
        return exc


def _connect_without_redirects(url: str, **kwargs: Any) -> ClientConnection:
    """``websockets.sync.client.connect(url, legacy=True, **kwargs)`` without redirects."""
    connection = _Direct(url, **kwargs).connect()
    connection.pending_legacy_warning = False
    return connection
