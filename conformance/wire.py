"""The OpAMP wire layer: message classes, bit constants and WebSocket framing.

Everything here is pure (no I/O). The message classes come from the
generated modules in :mod:`conformance.pb`; this module is the one place the
rest of the code imports them from.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass

from google.protobuf.message import DecodeError, Message

from conformance.pb.opamp.v1 import anyvalue_pb2, opamp_pb2

AgentToServer = opamp_pb2.AgentToServer
ServerToAgent = opamp_pb2.ServerToAgent
AgentDescription = opamp_pb2.AgentDescription
KeyValue = anyvalue_pb2.KeyValue
AnyValue = anyvalue_pb2.AnyValue

#: Path servers serve OpAMP on.
DEFAULT_PATH = "/v1/opamp"
#: Recommended per-message size limit, counted after decompression.
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
CONTENT_TYPE = "application/x-protobuf"
UID_HEADER = "OpAMP-Instance-UID"


class AgentCap:
    """AgentCapabilities bits."""

    REPORTS_STATUS = 0x1
    ACCEPTS_REMOTE_CONFIG = 0x2
    REPORTS_EFFECTIVE_CONFIG = 0x4
    ACCEPTS_PACKAGES = 0x8
    REPORTS_PACKAGE_STATUSES = 0x10
    REPORTS_OWN_TRACES = 0x20
    REPORTS_OWN_METRICS = 0x40
    REPORTS_OWN_LOGS = 0x80
    ACCEPTS_OPAMP_CONNECTION_SETTINGS = 0x100
    ACCEPTS_OTHER_CONNECTION_SETTINGS = 0x200
    ACCEPTS_RESTART_COMMAND = 0x400
    REPORTS_HEALTH = 0x800
    REPORTS_REMOTE_CONFIG = 0x1000
    REPORTS_HEARTBEAT = 0x2000
    REPORTS_AVAILABLE_COMPONENTS = 0x4000
    REPORTS_CONNECTION_SETTINGS_STATUS = 0x8000
    #: Every bit the schema defines.
    ALL = 0xFFFF


class ServerCap:
    """ServerCapabilities bits."""

    ACCEPTS_STATUS = 0x1
    OFFERS_REMOTE_CONFIG = 0x2
    ACCEPTS_EFFECTIVE_CONFIG = 0x4
    OFFERS_PACKAGES = 0x8
    ACCEPTS_PACKAGES_STATUS = 0x10
    OFFERS_CONNECTION_SETTINGS = 0x20
    ACCEPTS_CONNECTION_SETTINGS_REQUEST = 0x40
    #: Every bit the schema defines.
    ALL = 0x7F


class ServerFlag:
    """ServerToAgentFlags bits."""

    REPORT_FULL_STATE = 0x1
    REPORT_AVAILABLE_COMPONENTS = 0x2


class AgentFlag:
    """AgentToServerFlags bits."""

    REQUEST_INSTANCE_UID = 0x1


class ErrorType:
    """ServerErrorResponseType values."""

    UNKNOWN = 0
    BAD_REQUEST = 1
    UNAVAILABLE = 2


def cap_names(bits: int, table: type[AgentCap] | type[ServerCap] = AgentCap) -> list[str]:
    """Name the set bits of a capability word; unknown bits as hex."""
    names: list[str] = []
    known = 0
    for name, value in vars(table).items():
        if name.isupper() and name != "ALL" and isinstance(value, int):
            known |= value
            if bits & value:
                names.append(name)
    if bits & ~known:
        names.append(hex(bits & ~known))
    return names


class FramingError(ValueError):
    """A WebSocket message whose OpAMP header cannot be read."""


def encode_varint(value: int) -> bytes:
    """Encode an unsigned integer as a protobuf base-128 varint."""
    if value < 0:
        raise ValueError("varint must be unsigned")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(data: bytes, offset: int = 0) -> tuple[int, int]:
    """Decode a varint at ``offset``; return (value, offset after it)."""
    value = 0
    shift = 0
    pos = offset
    while pos < len(data):
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise FramingError("varint header longer than 10 bytes")
    raise FramingError("message ends inside the varint header")


def ws_frame(payload: bytes, header: int = 0) -> bytes:
    """One OpAMP WebSocket message: varint header then the protobuf bytes."""
    return encode_varint(header) + payload


@dataclass(frozen=True)
class WsMessage:
    """A decoded WebSocket message: its header value and protobuf bytes."""

    header: int
    payload: bytes


def ws_unframe(data: bytes) -> WsMessage:
    """Split an OpAMP WebSocket message into header and payload."""
    header, pos = decode_varint(data)
    return WsMessage(header=header, payload=data[pos:])


def gzip_bytes(data: bytes) -> bytes:
    """Gzip ``data`` deterministically (mtime 0)."""
    return gzip.compress(data, mtime=0)


#: How many gzip members :func:`gunzip_bounded` reads before giving up.
MAX_GZIP_MEMBERS = 32


class TooLarge(ValueError):
    """A body larger than the allowed limit after decompression."""


def gunzip_bounded(data: bytes, limit: int) -> bytes:
    """Decompress gzip ``data``; raise :class:`TooLarge` past ``limit`` bytes.

    A gzip stream may hold several members (RFC 1952): all are read, zero
    padding between them is skipped (as :func:`gzip.decompress` does), and
    anything else after a member is an error. At most
    :data:`MAX_GZIP_MEMBERS` members are read, which keeps the work linear.
    """
    decomp = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    out = decomp.decompress(data, limit + 1)
    members = 1
    while decomp.eof and len(out) <= limit:
        rest = decomp.unused_data.lstrip(b"\x00")
        if not rest:
            break
        if members >= MAX_GZIP_MEMBERS:
            raise zlib.error(f"more than {MAX_GZIP_MEMBERS} gzip members")
        members += 1
        decomp = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        out += decomp.decompress(rest, limit + 1 - len(out))
    if len(out) > limit or decomp.unconsumed_tail:
        raise TooLarge(f"decompressed body exceeds {limit} bytes")
    if not decomp.eof:
        raise zlib.error("truncated gzip stream")
    return out


def has_field(msg: Message, name: str) -> bool:
    """``msg.HasField(name)`` for a field name only known at run time."""
    return msg.HasField(name)


def parse_agent_to_server(data: bytes) -> AgentToServer:
    """Decode an AgentToServer; raise DecodeError on bad bytes."""
    msg = AgentToServer()
    msg.ParseFromString(data)
    return msg


def parse_server_to_agent(data: bytes) -> ServerToAgent:
    """Decode a ServerToAgent; raise DecodeError on bad bytes."""
    msg = ServerToAgent()
    msg.ParseFromString(data)
    return msg


__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_PATH",
    "UID_HEADER",
    "AgentCap",
    "AgentDescription",
    "AgentFlag",
    "AgentToServer",
    "AnyValue",
    "DecodeError",
    "ErrorType",
    "FramingError",
    "KeyValue",
    "ServerCap",
    "ServerFlag",
    "ServerToAgent",
    "TooLarge",
    "WsMessage",
    "cap_names",
    "decode_varint",
    "encode_varint",
    "gunzip_bounded",
    "gzip_bytes",
    "has_field",
    "parse_agent_to_server",
    "parse_server_to_agent",
    "ws_frame",
    "ws_unframe",
]
