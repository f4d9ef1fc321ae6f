"""A bounded client for the Fleet REST API, and the evidence it leaves.

Every call becomes a :class:`FleetCall`: what was asked (method, path, a
redacted description of the credential), the :class:`Exchange` that came
back (status, headers, body as received, or the problem), and the body
decoded as JSON when it is JSON. Bounds: the same watchdog and size limit
as the OpAMP HTTP driver.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from conformance.drivers.exchange import Exchange, Problem
from conformance.drivers.http import HttpDriver
from conformance.target import redact
from conformance.wire import TooLarge, gunzip_bounded, gzip_bytes

ENROLL_PATH = "/api/fleet/agents/enroll"
STATUS_PATH = "/api/status"
#: The oldest agent version every fleet-server accepts (User-Agent check).
OLDEST_AGENT_VERSION = "7.13.0"
#: Problems that break FLEET-SRV-NO-5XX whatever was sent.
BROKEN = {
    Problem.TIMEOUT: "no answer in time",
    Problem.DISCONNECTED: "connection dropped",
    Problem.CONNECT: "could not connect",
}


def api_key(key_id: str, secret: str) -> str:
    """An Elastic API key as sent after ``ApiKey``: base64 of ``id:secret``."""
    return base64.b64encode(f"{key_id}:{secret}".encode()).decode()


def changed_api_key(token: str) -> str | None:
    """``token`` with the last character of its secret changed, still base64 of
    ``id:secret``; ``None`` when ``token`` does not have that shape."""
    try:
        key_id, sep, secret = base64.b64decode(token, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if not (sep and secret and key_id):
        return None
    return api_key(key_id, secret[:-1] + ("x" if secret[-1] != "x" else "y"))


def checkin_path(agent_id: str) -> str:
    return f"/api/fleet/agents/{agent_id}/checkin"


def acks_path(agent_id: str) -> str:
    return f"/api/fleet/agents/{agent_id}/acks"


def user_agent(version: str) -> str:
    return f"Elastic Agent v{version}"


def enrol_body(enrol_type: str = "PERMANENT") -> dict[str, Any]:
    """An enrolment request body as Elastic Agent sends it, tagged as the suite's."""
    return {
        "type": enrol_type,
        "metadata": {
            "local": {"elastic": {"agent": {"version": OLDEST_AGENT_VERSION}}},
            "user_provided": {},
            "tags": ["fleet-conformance"],
        },
    }


@dataclass(frozen=True)
class FleetCall:
    """One Fleet API request and its outcome."""

    method: str
    path: str
    credential: str
    exchange: Exchange
    note: str = ""
    body: bytes = field(default=b"", repr=False)

    @property
    def status(self) -> int | None:
        return self.exchange.status

    @property
    def json(self) -> Any:
        """The response body as JSON, or ``None`` when it is not JSON."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None

    def summary(self) -> str:
        ex = self.exchange
        line = f"{self.method} {self.path} [{self.credential}]"
        if self.note:
            line += f" ({self.note})"
        line += f" ({ex.sent_bytes} B) ->"
        line += f" HTTP {ex.status}" if ex.status is not None else " no HTTP status"
        if ex.problem is not None:
            line += f" | {ex.problem.value}" + (f": {ex.detail}" if ex.detail else "")
        elif self.body:
            text = self.body[:160].decode("utf-8", "replace").replace("\n", " ")
            line += f" {text}" + ("..." if len(self.body) > 160 else "")
        retry = ex.header("Retry-After")
        if retry is not None:
            line += f" [Retry-After: {retry}]"
        return line + f" [{ex.elapsed * 1000:.0f} ms]"


def broken(call: FleetCall) -> str | None:
    """How a call breaks FLEET-SRV-NO-5XX (hang, reset, 5xx but a 503 with a reason)."""
    ex = call.exchange
    if ex.problem in BROKEN:
        return BROKEN[ex.problem] + (f" ({ex.detail})" if ex.detail else "")
    if ex.status is not None and ex.status >= 500:
        if ex.status == 503 and call.body.strip():
            return None
        return f"HTTP {ex.status}"
    return None


def error_shape_problem(call: FleetCall) -> str | None:
    """How an error response misses ``{statusCode, error, message}``, or ``None``.

    404 and 405 are not judged: routers answer them before any API handler
    runs (fleet-server's too), so their bodies are the router's.
    """
    status = call.status
    if status is None or status < 400 or call.exchange.problem is not None:
        return None
    if status in (404, 405):
        return None
    doc = call.json
    if not isinstance(doc, dict):
        return f"HTTP {status} body is not a JSON object"
    missing = [
        k for k, kind in (("error", str), ("message", str)) if not isinstance(doc.get(k), kind)
    ]
    if doc.get("statusCode") != status:
        return f"HTTP {status} body has statusCode {doc.get('statusCode')!r}"
    if missing:
        return f"HTTP {status} body lacks string {', '.join(missing)}"
    return None


class FleetClient:
    """Calls the Fleet API at ``base_url`` (scheme://host:port) within the given bounds."""

    def __init__(self, base_url: str, *, timeout: float, max_bytes: int = 1 << 24) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._http = HttpDriver(self.base_url, (), timeout=timeout, max_reply_bytes=max_bytes)

    def close(self) -> None:
        self._http.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        api_key: str | None = None,
        authorization: str | None = None,
        json_body: Any = None,
        raw_body: bytes | None = None,
        content_type: str | None = "application/json",
        agent: str | None = None,
        headers: Mapping[str, str] | None = None,
        gzip: bool = False,
        timeout: float | None = None,
        note: str = "",
    ) -> FleetCall:
        """One request; ``api_key`` sends ``Authorization: ApiKey <key>``."""
        sent: dict[str, str] = {}
        credential = "no Authorization"
        if api_key is not None:
            authorization = f"ApiKey {api_key}"
        if authorization is not None:
            sent["Authorization"] = authorization
            scheme, _, secret = authorization.partition(" ")
            credential = (
                f"Authorization: {scheme} {redact(secret)}" if secret else "Authorization: ***"
            )
        if agent is not None:
            sent["User-Agent"] = agent
        sent.update(headers or {})
        # HTTP drops whitespace around header values; h11 refuses to send it.
        sent = {name: value.strip() for name, value in sent.items()}
        body = raw_body if raw_body is not None else b""
        if json_body is not None:
            body = json.dumps(json_body).encode()
        if gzip:
            body = gzip_bytes(body)
            sent["Content-Encoding"] = "gzip"
        exchange = self._http.send_raw(
            body if method != "GET" else b"",
            url=self.base_url + path,
            method=method,
            headers=sent,
            content_type=content_type if method != "GET" else None,
            timeout=timeout,
            decode=False,
        )
        return FleetCall(
            method, path, credential, exchange, note, _decoded(exchange, self.max_bytes)
        )


def _decoded(exchange: Exchange, limit: int) -> bytes:
    if (exchange.header("Content-Encoding") or "").strip().lower() != "gzip":
        return exchange.raw
    try:
        return gunzip_bounded(exchange.raw, limit)
    except (TooLarge, zlib.error, EOFError, OSError):
        return exchange.raw


@dataclass
class FleetTranscript:
    """The calls of one Fleet test, one line each, as evidence."""

    calls: list[FleetCall] = field(default_factory=list)

    def add(self, call: FleetCall) -> FleetCall:
        self.calls.append(call)
        return call

    def render(self, last: int = 30) -> str:
        lines = [f"#{i + 1:<3} {c.summary()}" for i, c in enumerate(self.calls)]
        if len(lines) > last:
            lines = [f"... {len(lines) - last} earlier calls omitted", *lines[-last:]]
        return "\n".join(lines)
