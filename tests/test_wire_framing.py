"""Unit tests for the pure wire helpers: varints, WebSocket framing, gzip, cap names."""

from __future__ import annotations

import gzip
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.wire import (
    MAX_GZIP_MEMBERS,
    AgentCap,
    FramingError,
    ServerCap,
    TooLarge,
    WsMessage,
    cap_names,
    decode_varint,
    encode_varint,
    gunzip_bounded,
    gzip_bytes,
    ws_frame,
    ws_unframe,
)

U64_MAX = 2**64 - 1
MiB = 1024 * 1024

# --------------------------------------------------------------------------
# varint
# --------------------------------------------------------------------------

KNOWN_VARINTS = [
    (0, b"\x00"),
    (1, b"\x01"),
    (127, b"\x7f"),
    (128, b"\x80\x01"),
    (300, b"\xac\x02"),
    (16383, b"\xff\x7f"),
    (16384, b"\x80\x80\x01"),
    (2**32, b"\x80\x80\x80\x80\x10"),
    (U64_MAX, b"\xff" * 9 + b"\x01"),
]


@pytest.mark.parametrize(("value", "encoded"), KNOWN_VARINTS)
def test_varint_known_vectors(value: int, encoded: bytes) -> None:
    assert encode_varint(value) == encoded
    assert decode_varint(encoded) == (value, len(encoded))


@given(st.integers(min_value=0, max_value=U64_MAX))
def test_varint_round_trip(value: int) -> None:
    encoded = encode_varint(value)
    assert 1 <= len(encoded) <= 10
    assert all(b & 0x80 for b in encoded[:-1])
    assert not encoded[-1] & 0x80
    assert decode_varint(encoded) == (value, len(encoded))


@given(
    prefix=st.binary(max_size=8),
    value=st.integers(min_value=0, max_value=U64_MAX),
    suffix=st.binary(max_size=8),
)
def test_varint_decode_at_offset_ignores_surroundings(
    prefix: bytes, value: int, suffix: bytes
) -> None:
    encoded = encode_varint(value)
    data = prefix + encoded + suffix
    assert decode_varint(data, len(prefix)) == (value, len(prefix) + len(encoded))


def test_varint_negative_rejected() -> None:
    with pytest.raises(ValueError):
        encode_varint(-1)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x80", id="one-continuation-byte"),
        pytest.param(b"\xff\xff\xff", id="three-continuation-bytes"),
        pytest.param(b"\xff" * 9, id="nine-continuation-bytes"),
    ],
)
def test_varint_truncated(data: bytes) -> None:
    with pytest.raises(FramingError):
        decode_varint(data)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\xff" * 10 + b"\x01", id="eleven-bytes"),
        pytest.param(b"\x80" * 10 + b"\x00", id="eleven-bytes-zero-value"),
        pytest.param(b"\xff" * 64, id="long-run"),
    ],
)
def test_varint_longer_than_ten_bytes(data: bytes) -> None:
    with pytest.raises(FramingError):
        decode_varint(data)


def test_varint_ten_bytes_is_the_maximum_accepted() -> None:
    # A padded (non-minimal) encoding of 1 in exactly ten bytes still decodes.
    data = b"\x81" + b"\x80" * 8 + b"\x00"
    assert decode_varint(data) == (1, 10)


def test_framing_error_is_a_value_error() -> None:
    assert issubclass(FramingError, ValueError)


# --------------------------------------------------------------------------
# WebSocket framing
# --------------------------------------------------------------------------


@given(
    payload=st.binary(max_size=512),
    header=st.integers(min_value=0, max_value=U64_MAX),
)
def test_ws_frame_round_trip(payload: bytes, header: int) -> None:
    framed = ws_frame(payload, header)
    assert framed == encode_varint(header) + payload
    assert ws_unframe(framed) == WsMessage(header=header, payload=payload)


def test_ws_frame_default_header_is_single_zero_byte() -> None:
    assert ws_frame(b"abc") == b"\x00abc"
    assert ws_unframe(b"\x00abc") == WsMessage(0, b"abc")


def test_ws_frame_empty_payload() -> None:
    assert ws_frame(b"") == b"\x00"
    assert ws_unframe(b"\x00") == WsMessage(header=0, payload=b"")


@pytest.mark.parametrize(
    ("header", "framed"),
    [(1, b"\x01"), (127, b"\x7f"), (128, b"\x80\x01"), (300, b"\xac\x02")],
)
def test_ws_frame_non_zero_headers(header: int, framed: bytes) -> None:
    assert ws_frame(b"\x08\x01", header) == framed + b"\x08\x01"
    assert ws_unframe(framed + b"\x08\x01") == WsMessage(header, b"\x08\x01")
    assert ws_unframe(framed) == WsMessage(header, b"")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty-message"),
        pytest.param(b"\x80", id="truncated-header"),
        pytest.param(b"\xff" * 11 + b"payload", id="header-too-long"),
    ],
)
def test_ws_unframe_errors(data: bytes) -> None:
    with pytest.raises(FramingError):
        ws_unframe(data)


# --------------------------------------------------------------------------
# gzip
# --------------------------------------------------------------------------


@given(st.binary(max_size=4096))
def test_gzip_round_trip(data: bytes) -> None:
    packed = gzip_bytes(data)
    assert packed[:2] == b"\x1f\x8b"
    assert gzip.decompress(packed) == data
    assert gunzip_bounded(packed, len(data)) == data


def test_gzip_is_deterministic() -> None:
    data = b"opamp" * 100
    assert gzip_bytes(data) == gzip_bytes(data)
    assert gzip_bytes(data)[4:8] == b"\x00\x00\x00\x00"  # mtime 0


def test_gunzip_reads_foreign_gzip() -> None:
    data = b"hello world" * 50
    assert gunzip_bounded(gzip.compress(data, compresslevel=1), 10_000) == data


def test_gunzip_empty_payload() -> None:
    assert gunzip_bounded(gzip_bytes(b""), 0) == b""


def test_gunzip_exact_limit() -> None:
    data = b"x" * 1000
    assert gunzip_bounded(gzip_bytes(data), 1000) == data
    with pytest.raises(TooLarge):
        gunzip_bounded(gzip_bytes(data), 999)


def test_gunzip_bomb_stops_at_limit() -> None:
    bomb = gzip_bytes(bytes(10 * MiB))
    assert len(bomb) < 20_000
    with pytest.raises(TooLarge):
        gunzip_bounded(bomb, MiB)


def test_too_large_is_a_value_error() -> None:
    assert issubclass(TooLarge, ValueError)


@pytest.mark.parametrize("cut", [1, 8, 20])
def test_gunzip_truncated_raises(cut: int) -> None:
    packed = gzip_bytes(bytes(range(256)) * 8)
    with pytest.raises(zlib.error):
        gunzip_bounded(packed[:-cut], 1 * MiB)


def test_gunzip_empty_input_raises() -> None:
    with pytest.raises(zlib.error):
        gunzip_bounded(b"", MiB)


def test_gunzip_not_gzip_raises() -> None:
    with pytest.raises(zlib.error):
        gunzip_bounded(b"this is not gzip at all", MiB)


def test_gunzip_corrupt_crc_raises() -> None:
    packed = bytearray(gzip_bytes(b"some data to protect"))
    packed[-8] ^= 0xFF  # CRC32 of the member trailer
    with pytest.raises(zlib.error):
        gunzip_bounded(bytes(packed), MiB)


def test_gunzip_multi_member() -> None:
    # RFC 1952: a gzip stream is a series of members; all of them count.
    packed = gzip_bytes(b"first ") + gzip_bytes(b"second")
    assert gzip.decompress(packed) == b"first second"
    assert gunzip_bounded(packed, MiB) == b"first second"


def test_gunzip_multi_member_limit_counts_all_members() -> None:
    packed = gzip_bytes(b"a" * 600) + gzip_bytes(b"b" * 600)
    with pytest.raises(TooLarge):
        gunzip_bounded(packed, 1000)
    assert gunzip_bounded(packed, 1200) == b"a" * 600 + b"b" * 600


def test_gunzip_multi_member_bomb_stops_at_limit() -> None:
    member = gzip_bytes(bytes(MiB))
    with pytest.raises(TooLarge):
        gunzip_bounded(member * 10, 2 * MiB)


def test_gunzip_zero_padding_between_and_after_members() -> None:
    packed = gzip_bytes(b"one") + bytes(5) + gzip_bytes(b"two") + bytes(3)
    assert gzip.decompress(packed) == b"onetwo"
    assert gunzip_bounded(packed, MiB) == b"onetwo"


def test_gunzip_member_count_is_bounded() -> None:
    empty = gzip_bytes(b"")
    assert gunzip_bounded(empty * MAX_GZIP_MEMBERS, MiB) == b""
    with pytest.raises(zlib.error):
        gunzip_bounded(empty * (MAX_GZIP_MEMBERS + 1), MiB)


def test_gunzip_truncated_second_member_raises() -> None:
    with pytest.raises(zlib.error):
        gunzip_bounded(gzip_bytes(b"one") + gzip_bytes(b"two")[:-4], MiB)


def test_gunzip_trailing_garbage_raises() -> None:
    with pytest.raises(zlib.error):
        gunzip_bounded(gzip_bytes(b"data") + b"garbage", MiB)


# --------------------------------------------------------------------------
# cap_names
# --------------------------------------------------------------------------


def test_cap_names_zero() -> None:
    assert cap_names(0) == []
    assert cap_names(0, ServerCap) == []


def test_cap_names_single_bits() -> None:
    assert cap_names(AgentCap.REPORTS_STATUS) == ["REPORTS_STATUS"]
    assert cap_names(AgentCap.REPORTS_HEALTH) == ["REPORTS_HEALTH"]
    assert cap_names(ServerCap.ACCEPTS_STATUS, ServerCap) == ["ACCEPTS_STATUS"]


def test_cap_names_several_bits() -> None:
    bits = AgentCap.REPORTS_STATUS | AgentCap.REPORTS_EFFECTIVE_CONFIG | AgentCap.REPORTS_HEALTH
    assert set(cap_names(bits)) == {
        "REPORTS_STATUS",
        "REPORTS_EFFECTIVE_CONFIG",
        "REPORTS_HEALTH",
    }


def test_cap_names_all_defined_bits() -> None:
    names = cap_names(AgentCap.ALL)
    assert len(names) == 16
    assert "ALL" not in names
    assert not any(n.startswith("0x") for n in names)
    server = cap_names(ServerCap.ALL, ServerCap)
    assert len(server) == 7
    assert "ALL" not in server


def test_cap_names_unknown_bits_as_hex() -> None:
    assert cap_names(0x10000) == ["0x10000"]
    assert cap_names(AgentCap.REPORTS_STATUS | 0x30000) == ["REPORTS_STATUS", "0x30000"]
    assert cap_names(0x80, ServerCap) == ["0x80"]
    # A bit that is defined for agents is unknown in the server table.
    assert cap_names(AgentCap.REPORTS_HEALTH, ServerCap) == ["0x800"]


@given(st.integers(min_value=0, max_value=2**20))
def test_cap_names_cover_every_bit(bits: int) -> None:
    names = cap_names(bits)
    rebuilt = 0
    for name in names:
        rebuilt |= int(name, 16) if name.startswith("0x") else getattr(AgentCap, name)
    assert rebuilt == bits
