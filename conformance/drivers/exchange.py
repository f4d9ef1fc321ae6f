"""The record of one request/reply exchange with a target."""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from conformance.transcript import describe_agent_message, describe_server_message
from conformance.wire import AgentToServer, ServerToAgent


class Problem(enum.Enum):
    """Why an exchange produced no usable ServerToAgent."""

    TIMEOUT = "no answer in time"
    CONNECT = "could not connect"
    DISCONNECTED = "connection dropped"
    REJECTED = "WebSocket upgrade refused"
    EMPTY = "empty body"
    UNDECODABLE = "reply is not a ServerToAgent"
    TOO_LARGE = "reply over the size limit"
    FRAMING = "bad WebSocket framing"
    NOT_BINARY = "text WebSocket message"


@dataclass(frozen=True)
class Exchange:
    """One message sent and what came back.

    ``reply`` is the decoded ServerToAgent when there was one; ``problem``
    says why there was none (or why the reply is suspect); ``status`` is the
    HTTP status (``101`` for a WebSocket exchange on an open socket).
    """

    transport: str
    sent: AgentToServer | None
    sent_bytes: int
    started: float
    elapsed: float
    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    reply: ServerToAgent | None = None
    reply_bytes: int = 0
    problem: Problem | None = None
    detail: str = ""
    #: The response body as received (only for requests sent with ``decode=False``).
    raw: bytes = field(default=b"", repr=False)

    @property
    def ok(self) -> bool:
        """A decoded reply arrived with a success status."""
        return self.reply is not None and self.problem is None and self.status in (200, 101)

    def header(self, name: str) -> str | None:
        """A response header, case-insensitively."""
        low = name.lower()
        for key, value in self.headers.items():
            if key.lower() == low:
                return value
        return None

    def summary(self) -> str:
        """One transcript line: what was sent, what came back, how long it took."""
        sent = describe_agent_message(self.sent) if self.sent is not None else "<raw bytes>"
        line = f"{self.transport} >> {sent} ({self.sent_bytes} B)"
        if self.status is not None and self.status not in (101, 200):
            line += f" | HTTP {self.status}"
        if self.reply is not None:
            line += f" | << {describe_server_message(self.reply)}"
        if self.problem is not None:
            line += f" | {self.problem.value}"
            if self.detail:
                line += f": {self.detail}"
        return line + f" [{self.elapsed * 1000:.0f} ms]"


class Attempt:
    """An exchange under way: what was sent and when; ``finish`` records the outcome."""

    __slots__ = ("sent", "sent_bytes", "started", "transport")

    def __init__(
        self,
        transport: str,
        sent: AgentToServer | None,
        sent_bytes: int,
        started: float | None = None,
    ) -> None:
        self.transport = transport
        self.sent = sent
        self.sent_bytes = sent_bytes
        self.started = time.monotonic() if started is None else started

    def finish(
        self,
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        reply: ServerToAgent | None = None,
        reply_bytes: int = 0,
        problem: Problem | None = None,
        detail: str = "",
        raw: bytes = b"",
    ) -> Exchange:
        return Exchange(
            transport=self.transport,
            sent=self.sent,
            sent_bytes=self.sent_bytes,
            started=self.started,
            elapsed=time.monotonic() - self.started,
            status=status,
            headers=dict(headers or {}),
            reply=reply,
            reply_bytes=reply_bytes,
            problem=problem,
            detail=detail,
            raw=raw,
        )
