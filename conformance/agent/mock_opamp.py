"""The mock OpAMP server an agent under test talks to: real HTTP and WebSocket on loopback.

One port serves ``/v1/opamp`` both ways: a POST is a plain-HTTP exchange, a
GET with an upgrade opens a WebSocket. Every message the agent sends takes
the next :class:`Reply` of the plan (or the standing reply once the plan is
used up), and is recorded with its arrival time (monotonic clock), headers,
decoded body and the number of HTTP requests in flight at that moment.
WebSocket upgrades take their answer from a separate connect plan, so
connection failures can be scripted for WebSocket agents too.

Request bodies are read as sent: aiohttp's own decompression is switched
off, and a ``Content-Encoding: gzip`` body is decompressed here, with the
size limit applied to what it decompresses to. Any other content coding is
recorded as the message's problem, never guessed at.

The server runs aiohttp on its own event loop in a daemon thread; every wait
is bounded (a held reply at most ``hold`` seconds, shutdown a few seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import socket
import threading
import time
import zlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.utils import formatdate

from aiohttp import WSMsgType, web

from conformance.messages import new_uid
from conformance.model.opamp_agent import ACK, Connect, Received, Reply
from conformance.pb.opamp.v1 import opamp_pb2
from conformance.wire import (
    CONTENT_TYPE,
    DEFAULT_PATH,
    AgentCap,
    AgentToServer,
    DecodeError,
    FramingError,
    ServerCap,
    ServerFlag,
    ServerToAgent,
    TooLarge,
    gunzip_bounded,
    parse_agent_to_server,
    ws_frame,
    ws_unframe,
)

MAX_BODY = 4 << 20
SERVER_CAPS = ServerCap.ACCEPTS_STATUS | ServerCap.OFFERS_CONNECTION_SETTINGS
#: A gzip body may be a little larger on the wire than what it decompresses to.
MAX_WIRE_BODY = MAX_BODY + MAX_BODY // 8 + 1024
_READ = 1 << 16
#: A Retry-After value that is neither delta-seconds nor an HTTP date.
JUNK_RETRY_AFTER = "soon"


class UnsupportedEncoding(ValueError):
    """A Content-Encoding other than gzip or identity (OpAMP allows gzip only)."""


async def read_body(request: web.Request) -> bytes:
    """The request body, decompressed when it is gzip; TooLarge past the limits.

    Read to its end (a chunked body comes in pieces), at most :data:`MAX_WIRE_BODY`
    bytes on the wire and :data:`MAX_BODY` once decompressed.
    """
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ("", "identity", "gzip"):
        raise UnsupportedEncoding(f"Content-Encoding {encoding!r} is not gzip")
    pieces: list[bytes] = []
    size = 0
    while piece := await request.content.read(_READ):
        size += len(piece)
        if size > MAX_WIRE_BODY:
            raise TooLarge(f"body over {MAX_WIRE_BODY} bytes on the wire")
        pieces.append(piece)
    raw = b"".join(pieces)
    if encoding == "gzip":
        return gunzip_bounded(raw, MAX_BODY)
    if len(raw) > MAX_BODY:
        raise TooLarge(f"body over {MAX_BODY} bytes")
    return raw


def retry_after(reply: Reply) -> dict[str, str]:
    """The Retry-After header a throttling reply carries, written as ``reply.hint`` says."""
    if reply.hint == "junk":
        return {"Retry-After": JUNK_RETRY_AFTER}
    if reply.seconds is None:
        return {}
    if reply.hint == "date":
        # Whole seconds only: the agent is asked to wait at least ``seconds``, at most 1 s more.
        return {"Retry-After": formatdate(math.ceil(time.time()) + reply.seconds, usegmt=True)}
    return {"Retry-After": str(reply.seconds)}


@dataclass
class _Plan:
    pending: deque[Reply] = field(default_factory=deque)
    standing: Reply = ACK

    def take(self) -> Reply:
        return self.pending.popleft() if self.pending else self.standing


class MockOpAMP:
    """A loopback OpAMP server for one scenario; use as a context manager."""

    def __init__(
        self,
        *,
        hold: float = 0.0,
        ws_heartbeat: int | None = None,
        http_heartbeat: int | None = None,
    ) -> None:
        #: Seconds each plain-HTTP reply is held (so overlapping requests can be seen).
        self.hold = hold
        #: Offered on the first reply of each WebSocket connection, so that an idle
        #: WebSocket agent keeps talking (None: never): in place of a plain ack, or
        #: beside a ReportFullState flag or a new uid.
        self.ws_heartbeat = ws_heartbeat
        #: The same on the first plain-HTTP reply: the agent then polls at this interval
        #: instead of its own (the spec's default is 30 s), so a scenario needing several
        #: messages fits a short window.
        self.http_heartbeat = http_heartbeat
        #: Over WebSocket, push a ServerToAgent that asks for nothing every this many
        #: seconds (unsolicited, spec l. 858; None: never); see :meth:`push`.
        self._push_every: float | None = None
        self._pushes: list[float] = []
        self._http_replies = 0
        self._lock = threading.Lock()
        self._plan = _Plan()
        self._connect_plan: deque[int | Reply] = deque()
        self._received: list[Received] = []
        self._attempts: list[Connect] = []
        self._in_flight = 0
        self._connections = 0
        #: The client's (address, port) of every plain-HTTP request, in arrival order.
        self._http_peers: list[tuple[str, int]] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._port = 0
        self._problem: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)

    # -- life cycle ----------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}{DEFAULT_PATH}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self._port}{DEFAULT_PATH}"

    def __enter__(self) -> MockOpAMP:
        self._thread.start()
        if not self._ready.wait(10) or self._problem is not None:
            raise RuntimeError(f"the mock OpAMP server did not start: {self._problem}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        stop = self._stop
        if stop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(stop.set)
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:  # reported by __enter__
            self._problem = exc
            self._ready.set()
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post(DEFAULT_PATH, self._http)
        app.router.add_get(DEFAULT_PATH, self._ws)
        # Bodies are decompressed by read_body, within its limits, and read as sent.
        runner = web.AppRunner(
            app, handle_signals=False, shutdown_timeout=0.1, auto_decompress=False
        )
        await runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self._port = int(sock.getsockname()[1])
        site = web.SockSite(runner, sock)
        await site.start()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    # -- the plan ------------------------------------------------------------

    def plan(self, replies: Iterable[Reply] = (), then: Reply = ACK) -> None:
        """Answer the next messages with ``replies``, then with ``then``."""
        with self._lock:
            self._plan = _Plan(deque(replies), then)

    def push(self, every: float | None) -> None:
        """From now on push a ServerToAgent asking for nothing every ``every`` seconds on
        each open WebSocket connection that has had a reply (None: stop)."""
        with self._lock:
            self._push_every = every

    def refuse_connections(self, statuses: Iterable[int | Reply]) -> None:
        """Refuse the next WebSocket upgrades with these HTTP statuses (0: accept that one),
        or with a "429"/"503" :class:`Reply` and its Retry-After."""
        with self._lock:
            self._connect_plan = deque(statuses)

    def _take(self) -> Reply:
        with self._lock:
            return self._plan.take()

    # -- what was seen -------------------------------------------------------

    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def attempts(self) -> list[Connect]:
        with self._lock:
            return list(self._attempts)

    def pushes(self) -> list[float]:
        """When each unsolicited WebSocket push was sent (monotonic clock)."""
        with self._lock:
            return list(self._pushes)

    def http_peers(self) -> list[tuple[str, int]]:
        """The client address and port of each plain-HTTP request: one per TCP connection."""
        with self._lock:
            return list(self._http_peers)

    def wait_for(self, count: int, timeout: float) -> list[Received]:
        """Messages once ``count`` arrived, or what arrived within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = self.received()
            if len(seen) >= count:
                return seen
            time.sleep(0.01)
        return self.received()

    def _record(self, item: Received) -> None:
        with self._lock:
            self._received.append(item)

    # -- answering -----------------------------------------------------------

    @staticmethod
    def _decode(raw: bytes) -> tuple[AgentToServer | None, str]:
        try:
            return parse_agent_to_server(raw), ""
        except DecodeError as exc:
            return None, f"not an AgentToServer: {exc}"

    @staticmethod
    def _offerable(msg: AgentToServer | None, reply: Reply) -> Reply:
        """A heartbeat offer goes only to an agent that reports heartbeats and accepts OpAMP
        connection settings (servers may offer nothing else: SRV-CAP-RESPECT); to any
        other it becomes a plain ack."""
        if reply.kind != "heartbeat":
            return reply
        wanted = AgentCap.REPORTS_HEARTBEAT | AgentCap.ACCEPTS_OPAMP_CONNECTION_SETTINGS
        if msg is None or msg.capabilities & wanted != wanted:
            return ACK
        return reply

    @staticmethod
    def _first_offer(msg: AgentToServer | None, reply: Reply, seconds: int | None) -> Reply:
        """The first reply with a heartbeat offer (``seconds``) when the agent takes one:
        a plain ack becomes the offer; a flag or a new uid keeps its kind and carries the
        offer beside it (see :meth:`_reply_for`)."""
        if seconds is None or reply != ACK:
            return reply
        return MockOpAMP._offerable(msg, Reply("heartbeat", seconds))

    def _reply_for(
        self,
        msg: AgentToServer | None,
        reply: Reply,
        transport: str = "http",
        offer: int | None = None,
    ) -> ServerToAgent:
        out = ServerToAgent(capabilities=SERVER_CAPS)
        if msg is not None and reply.kind != "no-uid":
            out.instance_uid = msg.instance_uid
        if reply.kind == "full":
            out.flags = ServerFlag.REPORT_FULL_STATE
        elif reply.kind == "new-uid":
            out.agent_identification.new_instance_uid = new_uid()
        seconds = reply.seconds if reply.kind == "heartbeat" else None
        if (
            seconds is None
            and reply.kind in ("full", "new-uid")
            and offer is not None
            and self._offerable(msg, Reply("heartbeat", offer)).kind == "heartbeat"
        ):
            seconds = offer
        if reply.kind == "heartbeat" or seconds is not None:
            settings = out.connection_settings.opamp
            # The endpoint MUST be set in an offer: the one the agent already uses.
            settings.destination_endpoint = self.ws_url if transport == "ws" else self.url
            settings.heartbeat_interval_seconds = seconds or 1
        elif reply.kind in ("bad-request", "unavailable", "503", "429"):
            out = ServerToAgent(instance_uid=out.instance_uid)
            if reply.kind == "bad-request":
                out.error_response.type = opamp_pb2.ServerErrorResponseType_BadRequest
                out.error_response.error_message = "fleet-conformance: rejected on purpose"
            else:
                out.error_response.type = opamp_pb2.ServerErrorResponseType_Unavailable
                out.error_response.error_message = "fleet-conformance: try again later"
                if reply.seconds is not None:
                    nanos = reply.seconds * 1_000_000_000
                    out.error_response.retry_info.retry_after_nanoseconds = nanos
        return out

    async def _http(self, request: web.Request) -> web.StreamResponse:
        at = time.monotonic()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        with self._lock:
            self._in_flight += 1
            in_flight = self._in_flight
            if isinstance(peer, tuple):
                self._http_peers.append((str(peer[0]), int(peer[1])))
        try:
            reply = self._take()
            try:
                raw = await read_body(request)
                msg, problem = self._decode(raw)
            except (TooLarge, UnsupportedEncoding, zlib.error, EOFError, OSError) as exc:
                raw, msg, problem = b"", None, f"unreadable body: {exc}"
            with self._lock:
                first = self._http_replies == 0
                self._http_replies += 1
            offer = self.http_heartbeat if first else None
            reply = self._offerable(msg, self._first_offer(msg, reply, offer))
            response, sent = self._http_answer(msg, reply, offer)
            headers = tuple(request.headers.items())
            self._record(
                Received(at, "http", 0, headers, msg, problem, reply, in_flight, raw, sent)
            )
            if self.hold:
                await asyncio.sleep(self.hold)
            return response
        finally:
            with self._lock:
                self._in_flight -= 1

    def _http_answer(
        self, msg: AgentToServer | None, reply: Reply, offer: int | None = None
    ) -> tuple[web.Response, ServerToAgent | None]:
        kind = reply.kind
        if kind in ("429", "503"):
            return web.Response(status=int(kind), headers=retry_after(reply), text="busy"), None
        if kind == "500":
            return web.Response(status=500, text="fleet-conformance: error on purpose"), None
        if kind == "empty":
            return web.Response(body=b"", content_type=CONTENT_TYPE), ServerToAgent()
        if kind == "garbage":
            junk = b"\xff\xfe<not protobuf>" + os.urandom(8)
            return web.Response(body=junk, content_type=CONTENT_TYPE), None
        sent = self._reply_for(msg, reply, "http", offer)
        ctype = "text/plain" if kind == "wrong-ct" else CONTENT_TYPE
        return web.Response(body=sent.SerializeToString(), content_type=ctype), sent

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        at = time.monotonic()
        with self._lock:
            planned = self._connect_plan.popleft() if self._connect_plan else 0
            refuse = int(planned.kind) if isinstance(planned, Reply) else planned
            self._attempts.append(Connect(at, refuse or 101))
            self._connections += 1
            number = self._connections
        if refuse:
            hint = retry_after(planned) if isinstance(planned, Reply) else {}
            return web.Response(
                status=refuse, headers=hint, text="fleet-conformance: refused on purpose"
            )
        ws = web.WebSocketResponse(max_msg_size=MAX_BODY, heartbeat=None)
        if not ws.can_prepare(request).ok:
            return web.Response(status=400, text="expected a WebSocket upgrade or a POST")
        await ws.prepare(request)
        headers = tuple(request.headers.items())
        first = True
        #: The instance_uid of the agent's last decoded message, for the pushes.
        uid: list[bytes] = []
        pusher: asyncio.Task[None] | None = None
        try:
            async for frame in ws:
                if frame.type != WSMsgType.BINARY:
                    if frame.type == WSMsgType.TEXT:
                        self._record(
                            Received(
                                time.monotonic(), "ws", number, headers, None, "text frame", ACK
                            )
                        )
                    continue
                arrived = time.monotonic()
                reply = self._take()
                offer = self.ws_heartbeat if first else None
                first = False
                try:
                    payload = ws_unframe(frame.data).payload
                    msg, problem = self._decode(payload)
                except FramingError as exc:
                    payload, msg, problem = frame.data, None, f"bad framing: {exc}"
                if msg is not None:
                    uid[:] = [bytes(msg.instance_uid)]
                reply = self._offerable(msg, self._first_offer(msg, reply, offer))
                sent = self._ws_reply(msg, reply, offer)
                self._record(
                    Received(arrived, "ws", number, headers, msg, problem, reply, 1, payload, sent)
                )
                if not await self._ws_answer(ws, sent, reply):
                    break
                if pusher is None:
                    pusher = asyncio.create_task(self._push(ws, uid))
        finally:
            if pusher is not None:
                pusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pusher
        return ws

    async def _push(self, ws: web.WebSocketResponse, uid: list[bytes]) -> None:
        """While :meth:`push` asks for it, send a ServerToAgent that asks for nothing
        (addressed to ``uid``, the agent's latest) at that interval, until the connection
        closes or this is cancelled."""
        while not ws.closed:
            with self._lock:
                every = self._push_every
            await asyncio.sleep(0.05 if every is None else every)
            with self._lock:
                if ws.closed or self._push_every is None:
                    continue
            push = ServerToAgent(capabilities=SERVER_CAPS)
            if uid:
                push.instance_uid = uid[0]
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_bytes(ws_frame(push.SerializeToString()))
                with self._lock:
                    self._pushes.append(time.monotonic())

    def _ws_reply(
        self, msg: AgentToServer | None, reply: Reply, offer: int | None = None
    ) -> ServerToAgent | None:
        """The ServerToAgent a WebSocket reply carries (None: a close or a broken frame)."""
        if reply.kind in ("500", "garbage", "wrong-ct"):
            return None
        if reply.kind == "empty":
            return ServerToAgent()
        if reply.kind in ("429", "503"):
            return self._reply_for(msg, Reply("unavailable", reply.seconds), "ws")
        return self._reply_for(msg, reply, "ws", offer)

    async def _ws_answer(
        self, ws: web.WebSocketResponse, sent: ServerToAgent | None, reply: Reply
    ) -> bool:
        """Send the reply; False when the plan closes the connection."""
        kind = reply.kind
        with contextlib.suppress(ConnectionError, RuntimeError):
            if kind == "500":
                await ws.close(code=1011, message=b"fleet-conformance: internal error")
                return False
            if kind == "empty":
                await ws.send_bytes(ws_frame(b""))
                return True
            if kind == "garbage":
                await ws.send_bytes(b"\x00\xff\xfe<not protobuf>")
                return True
            if kind == "wrong-ct":
                await ws.send_str("fleet-conformance: a text frame")
                return True
            assert sent is not None
            await ws.send_bytes(ws_frame(sent.SerializeToString()))
            if kind in ("unavailable", "429", "503"):
                await ws.close(code=1000)
                return False
        return True
