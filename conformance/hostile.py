"""Hostile request bodies for the robustness rules (SRV-NO-5XX, SRV-BADREQ).

Each :class:`BadInput` is one request a careless or malicious agent could
send: random bytes, a valid message cut short or with bytes flipped, known
fields with the wrong wire type, an ``instance_uid`` of the wrong length, an
empty body, unknown fields, a huge repeated field, a wrong Content-Type, a
body that claims gzip and is not, or (WebSocket only) a message whose OpAMP
header cannot be read. Whether the input is *malformed* (so that
SRV-BADREQ expects a BAD_REQUEST answer) is decided by decoding it the way a
server must, not by the kind alone: a truncated message can still be valid.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from dataclasses import dataclass

from hypothesis import strategies as st

from conformance.messages import full_status, heartbeat
from conformance.strategies import agent_capabilities
from conformance.wire import CONTENT_TYPE, DecodeError, parse_agent_to_server
from conformance.wire import encode_varint as varint

UID_LENGTH = 16
#: How an AgentToServer starts: field 1 (instance_uid), length 16.
_UID_PREFIX = b"\x0a\x10"


class Kind(enum.Enum):
    RANDOM = "random bytes"
    TRUNCATED = "truncated message"
    FLIPPED = "message with flipped bytes"
    WRONG_TYPE = "known field with the wrong wire type"
    BAD_UID = "instance_uid of the wrong length"
    EMPTY = "empty body"
    UNKNOWN_FIELDS = "unknown fields"
    HUGE_REPEATED = "huge repeated field"
    CONTENT_TYPE = "wrong Content-Type"
    FAKE_GZIP = "gzip declared, body not gzip"
    UNFRAMED = "WebSocket message without a readable header"


#: Kinds that only exist over HTTP (headers); WebSocket tests skip them.
HTTP_ONLY = frozenset({Kind.CONTENT_TYPE, Kind.FAKE_GZIP})
#: Kinds that only exist over WebSocket (the OpAMP message header); HTTP tests skip them.
WS_ONLY = frozenset({Kind.UNFRAMED})
#: WebSocket messages whose OpAMP header (a varint) cannot be read: an empty
#: message, and varints cut short or longer than 10 bytes (spec l.405-421).
UNFRAMED_BODIES: tuple[bytes, ...] = (b"", b"\x80", b"\xff\xff\xff", b"\xff" * 11)


@dataclass(frozen=True)
class BadInput:
    kind: Kind
    body: bytes
    content_type: str | None = CONTENT_TYPE
    gzip_claimed: bool = False

    def __repr__(self) -> str:
        head = self.body[:24].hex() + ("..." if len(self.body) > 24 else "")
        extra = ""
        if self.content_type != CONTENT_TYPE:
            extra += f", content_type={self.content_type!r}"
        if self.gzip_claimed:
            extra += ", Content-Encoding: gzip"
        return f"BadInput({self.kind.value}, {len(self.body)} B: {head or '<empty>'}{extra})"

    def with_fresh_uid(self) -> BadInput:
        """The same input from an agent never seen before.

        Generated uids repeat across examples (Hypothesis favours zeros); a
        server may rightly treat a repeated uid and sequence_num as a
        duplicate, so every send gets its own uid where the body has one in
        the usual place (field 1, 16 bytes, first).
        """
        if self.kind is Kind.BAD_UID or not self.body.startswith(_UID_PREFIX):
            return self
        end = len(_UID_PREFIX) + UID_LENGTH
        if len(self.body) < end:
            return self
        body = _UID_PREFIX + os.urandom(UID_LENGTH) + self.body[end:]
        return dataclasses.replace(self, body=body)

    @property
    def label(self) -> str:
        return f"{self.kind.value} ({len(self.body)} B)"

    def malformation(self) -> str | None:
        """Why a server must refuse this input as malformed, or ``None`` if it need not.

        Transport-level faults are not judged here: the spec has servers treat
        a wrong Content-Type as a WebSocket upgrade attempt, and a body that
        claims gzip and is not may fairly get a plain HTTP 4xx (415, 400).
        """
        if self.kind is Kind.CONTENT_TYPE or self.gzip_claimed:
            return None
        if self.kind is Kind.UNFRAMED:
            return "no readable OpAMP WebSocket header"
        try:
            msg = parse_agent_to_server(self.body)
        except DecodeError:
            return "not a decodable AgentToServer"
        if len(msg.instance_uid) != UID_LENGTH:
            return f"instance_uid of {len(msg.instance_uid)} bytes"
        return None


def _tag(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def _field(number: int, wire_type: int, payload: bytes) -> bytes:
    """One encoded field: the tag, then the payload in the wire type's layout."""
    if wire_type == 2:
        return _tag(number, 2) + varint(len(payload)) + payload
    return _tag(number, wire_type) + payload


#: Known AgentToServer fields and a wire type each one must not have:
#: instance_uid (bytes) as varint, sequence_num (varint) as length-delimited,
#: agent_description (message) as fixed32, capabilities (varint) as fixed64,
#: health (message) as varint.
_WRONG_TYPES: tuple[tuple[int, int, bytes], ...] = (
    (1, 0, varint(7)),
    (2, 2, b"\x01\x02\x03"),
    (3, 5, b"\x00\x00\x00\x01"),
    (4, 1, b"\x01" * 8),
    (5, 0, varint(1)),
)


@st.composite
def _valid_body(draw: st.DrawFn) -> bytes:
    uid = draw(st.binary(min_size=UID_LENGTH, max_size=UID_LENGTH))
    caps = draw(agent_capabilities())
    seq = draw(st.integers(0, 1000))
    msg = full_status(uid, seq, caps) if draw(st.booleans()) else heartbeat(uid, seq, caps)
    return msg.SerializeToString()


@st.composite
def _unknown_field(draw: st.DrawFn) -> bytes:
    number = draw(st.integers(100, 100_000))
    wire_type = draw(st.sampled_from([0, 1, 2, 5]))
    if wire_type == 0:
        return _field(number, 0, varint(draw(st.integers(0, 2**63))))
    if wire_type == 1:
        return _field(number, 1, draw(st.binary(min_size=8, max_size=8)))
    if wire_type == 5:
        return _field(number, 5, draw(st.binary(min_size=4, max_size=4)))
    return _field(number, 2, draw(st.binary(max_size=64)))


@st.composite
def bad_inputs(draw: st.DrawFn, *, max_bytes: int, websocket: bool = False) -> BadInput:
    """One hostile request body, at most ``max_bytes`` long (the target's limit)."""
    kinds = [k for k in Kind if k not in (HTTP_ONLY if websocket else WS_ONLY)]
    kind = draw(st.sampled_from(kinds))
    if kind is Kind.RANDOM:
        return BadInput(kind, draw(st.binary(min_size=1, max_size=256)))
    if kind is Kind.EMPTY:
        return BadInput(kind, b"")
    if kind is Kind.UNFRAMED:
        return BadInput(kind, draw(st.sampled_from(UNFRAMED_BODIES)))
    if kind is Kind.BAD_UID:
        size = draw(st.integers(0, 64).filter(lambda n: n != UID_LENGTH))
        msg = heartbeat(draw(st.binary(min_size=size, max_size=size)), 0)
        return BadInput(kind, msg.SerializeToString())
    valid = draw(_valid_body())
    if kind is Kind.TRUNCATED:
        return BadInput(kind, valid[: draw(st.integers(1, len(valid) - 1))])
    if kind is Kind.FLIPPED:
        body = bytearray(valid)
        for _ in range(draw(st.integers(1, 4))):
            body[draw(st.integers(0, len(body) - 1))] ^= draw(st.integers(1, 255))
        return BadInput(kind, bytes(body))
    if kind is Kind.WRONG_TYPE:
        number, wire_type, payload = draw(st.sampled_from(_WRONG_TYPES))
        return BadInput(kind, valid + _field(number, wire_type, payload))
    if kind is Kind.UNKNOWN_FIELDS:
        extra = b"".join(draw(st.lists(_unknown_field(), min_size=1, max_size=5)))
        return BadInput(kind, valid + extra)
    if kind is Kind.HUGE_REPEATED:
        return BadInput(kind, _huge(valid, draw(st.integers(1_000, 50_000)), max_bytes))
    if kind is Kind.CONTENT_TYPE:
        wrong = draw(st.sampled_from([None, "text/plain", "application/json", "application/grpc"]))
        return BadInput(kind, valid, content_type=wrong)
    return BadInput(
        kind, draw(st.sampled_from([valid, b"\x1f\x8b\x08\x00garbage"])), gzip_claimed=True
    )


def _huge(valid: bytes, count: int, max_bytes: int) -> bytes:
    """``valid`` plus ``count`` identifying attributes, kept under half of ``max_bytes``."""
    attr = b"\x0a\x01k\x12\x03\x0a\x01v"  # KeyValue{key: "k", value: {string_value: "v"}}
    one = _field(1, 2, attr)
    count = min(count, max(1, (max_bytes // 2) // len(one)))
    description = one * count
    return valid + _field(3, 2, description)
