"""The mock Fleet server an agent under test talks to: real HTTP on loopback, scripted faults.

Enrol, check-in (long poll), ack and status answer with fleet-server's
shapes. Each enrolment or check-in request takes the next :class:`Fault`
of its queue, or the queue's standing fault once the queue is empty, and
every arrival is timestamped with the monotonic clock before anything is
answered. Every wait here is bounded: a hang lasts at most
``hang_limit`` seconds, a long poll at most ``checkin_hold``.
"""

from __future__ import annotations

import json
import secrets
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: Fault kinds: an HTTP status, "ok", "warning" (check-in ok with a Warning
#: header), "reset" (connection reset) or "hang" (no answer until the client
#: gives up, at most ``hang_limit``).
KINDS = ("ok", "warning", "401", "403", "429", "500", "502", "503", "504", "reset", "hang")
MAX_BODY = 1 << 20


@dataclass(frozen=True)
class Fault:
    kind: str = "ok"
    #: Seconds for the ``Retry-After`` header of a 429 or 503 (None: no header).
    retry_after: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault {self.kind!r}")

    def __str__(self) -> str:
        if self.retry_after is not None:
            return f"{self.kind} Retry-After={self.retry_after}"
        return self.kind

    @property
    def failing(self) -> bool:
        return self.kind not in ("ok", "warning")


OK = Fault()


@dataclass(frozen=True)
class Arrival:
    """One request as the mock saw it."""

    at: float
    endpoint: str
    fault: Fault
    #: What was sent back: a status code, "reset" or "hang".
    answer: str
    agent_id: str = ""


@dataclass
class _Queue:
    pending: deque[Fault] = field(default_factory=deque)
    standing: Fault = OK

    def take(self) -> Fault:
        return self.pending.popleft() if self.pending else self.standing


def _error(status: int) -> dict[str, Any]:
    names = {401: "Unauthorized", 403: "Forbidden", 429: "Too Many Requests"}
    name = names.get(status, "Internal Server Error" if status == 500 else "Service Unavailable")
    return {"statusCode": status, "error": name, "message": f"mock fault {status}"}


class MockFleet:
    """A loopback Fleet server for one scenario; use as a context manager."""

    def __init__(
        self,
        enrollment_token: str,
        *,
        checkin_hold: float = 1.0,
        hang_limit: float = 10.0,
    ) -> None:
        self.enrollment_token = enrollment_token
        self.checkin_hold = checkin_hold
        self.hang_limit = hang_limit
        self._lock = threading.Lock()
        self._queues = {"enroll": _Queue(), "checkin": _Queue()}
        self._arrivals: list[Arrival] = []
        self._agents: dict[str, str] = {}
        self._closing = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> MockFleet:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- the fault plan ------------------------------------------------------

    def plan(self, endpoint: str, faults: Iterable[Fault] = (), then: Fault = OK) -> None:
        """Queue ``faults`` for the next requests to ``endpoint``, then answer ``then``."""
        with self._lock:
            self._queues[endpoint] = _Queue(deque(faults), then)

    def take(self, endpoint: str) -> Fault:
        with self._lock:
            return self._queues[endpoint].take()

    # -- what was seen -------------------------------------------------------

    def record(self, arrival: Arrival) -> None:
        with self._lock:
            self._arrivals.append(arrival)

    def arrivals(self, endpoint: str | None = None) -> list[Arrival]:
        with self._lock:
            return [a for a in self._arrivals if endpoint is None or a.endpoint == endpoint]

    def wait_for(self, endpoint: str, count: int, timeout: float) -> list[Arrival]:
        """Wait (bounded) until ``count`` requests reached ``endpoint``; returns them all."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = self.arrivals(endpoint)
            if len(seen) >= count:
                return seen
            time.sleep(0.02)
        return self.arrivals(endpoint)

    def new_agent(self) -> tuple[str, str]:
        agent_id = secrets.token_hex(8)
        key = secrets.token_urlsafe(18)
        with self._lock:
            self._agents[key] = agent_id
        return agent_id, key

    def agent_for(self, key: str) -> str | None:
        with self._lock:
            return self._agents.get(key)

    def closing(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True when the mock is shutting down."""
        return self._closing.wait(seconds)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type, mock: MockFleet) -> None:
        self.mock = mock
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the arrivals are the record."""

    @property
    def mock(self) -> MockFleet:
        return self.server.mock

    def do_GET(self) -> None:
        if self.path.split("?")[0] == "/api/status":
            self._json(200, {"name": "fleet-server", "status": "HEALTHY"})
        else:
            self._json(404, {"statusCode": 404, "error": "Not Found", "message": self.path})

    def do_POST(self) -> None:
        now = time.monotonic()
        try:
            raw = self._body()
        except ValueError:
            self.close_connection = True
            self._json(400, {"statusCode": 400, "error": "Bad Request", "message": "bad chunk"})
            return
        if raw is None:
            self.close_connection = True
            self._json(413, _error(413) | {"statusCode": 413})
            return
        path = self.path.split("?")[0]
        parts = path.strip("/").split("/")
        if path == "/api/fleet/agents/enroll":
            self._enroll(now, raw)
        elif len(parts) == 5 and parts[:3] == ["api", "fleet", "agents"] and parts[4] == "checkin":
            self._checkin(now, parts[3], raw)
        elif len(parts) == 5 and parts[:3] == ["api", "fleet", "agents"] and parts[4] == "acks":
            self._json(200, {"action": "acks", "items": []})
        else:
            self._json(404, {"statusCode": 404, "error": "Not Found", "message": path})

    def _body(self) -> bytes | None:
        """The request body, Content-Length or chunked; None when over the size limit."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            size = 0
            while True:
                line = self.rfile.readline(1024)
                length = int(line.split(b";")[0].strip() or b"0", 16)
                size += length
                if size > MAX_BODY:
                    return None
                if length == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(length))
                self.rfile.readline(1024)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return None
        return self.rfile.read(length) if length else b""

    def _enroll(self, now: float, raw: bytes) -> None:
        fault = self.mock.take("enroll")
        auth = self.headers.get("Authorization", "")
        if fault.kind in ("ok", "warning") and auth != f"ApiKey {self.mock.enrollment_token}":
            fault = Fault("401")
        if fault.failing:
            self._fail(now, "enroll", fault)
            return
        agent_id, key = self.mock.new_agent()
        self.mock.record(Arrival(now, "enroll", fault, "200", agent_id))
        try:
            metadata = json.loads(raw or b"{}").get("metadata", {})
        except (ValueError, AttributeError):
            metadata = {}
        item = {
            "id": agent_id,
            "active": True,
            "policy_id": "fleet-conformance-policy",
            "type": "PERMANENT",
            "enrolled_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "user_provided_metadata": {},
            "local_metadata": metadata.get("local", {}) if isinstance(metadata, dict) else {},
            "access_api_key_id": agent_id,
            "access_api_key": key,
            "status": "online",
            "tags": [],
        }
        self._json(200, {"action": "created", "item": item})

    def _checkin(self, now: float, agent_id: str, raw: bytes) -> None:
        fault = self.mock.take("checkin")
        auth = self.headers.get("Authorization", "")
        known = self.mock.agent_for(auth.removeprefix("ApiKey ")) == agent_id
        if fault.kind in ("ok", "warning") and not known:
            fault = Fault("401")
        if fault.failing:
            self._fail(now, "checkin", fault, agent_id)
            return
        self.mock.record(Arrival(now, "checkin", fault, "200", agent_id))
        hold = self.mock.checkin_hold
        try:
            asked = json.loads(raw or b"{}").get("poll_timeout")
        except (ValueError, AttributeError):
            asked = None
        if isinstance(asked, str) and asked.endswith("s") and asked[:-1].isdigit():
            hold = min(hold, float(asked[:-1]))
        if self.mock.closing(hold):
            return
        extra = {"Warning": '299 fleet-server "mock degraded"'} if fault.kind == "warning" else {}
        body = {"action": "checkin", "ack_token": "fleet-conformance", "actions": []}
        self._json(200, body, extra)

    def _fail(self, now: float, endpoint: str, fault: Fault, agent_id: str = "") -> None:
        self.mock.record(Arrival(now, endpoint, fault, fault.kind, agent_id))
        if fault.kind == "reset":
            self._reset()
        elif fault.kind == "hang":
            self._hang()
        else:
            status = int(fault.kind)
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = str(fault.retry_after)
            self._json(status, _error(status), headers)

    def _reset(self) -> None:
        self.close_connection = True
        sock = self.connection
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()

    def _hang(self) -> None:
        """Say nothing until the client closes the connection or the hang limit passes."""
        self.close_connection = True
        sock = self.connection
        deadline = time.monotonic() + self.mock.hang_limit
        sock.settimeout(0.1)
        while time.monotonic() < deadline and not self.mock.closing(0):
            try:
                if sock.recv(1, socket.MSG_PEEK) == b"":
                    return  # the client gave up
            except TimeoutError:
                continue
            except OSError:
                return
            time.sleep(0.05)
        self._reset()

    def _json(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Elastic-Api-Version", "2023-06-01")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True
