"""Pure helpers of the server rules: UUID v7 form, exact-size padding, unframed inputs."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings

from conformance.hostile import UNFRAMED_BODIES, BadInput, Kind, bad_inputs
from conformance.messages import new_uid
from conformance.suite.test_server_access import padded_heartbeat
from conformance.suite.test_server_hygiene import uuid7_fault
from conformance.wire import FramingError, ws_unframe
from fixtures.reference.logic import uuid7_bytes


def test_uuid7_fault_accepts_v7_and_names_other_forms() -> None:
    assert uuid7_fault(uuid7_bytes()) is None
    assert uuid7_fault(new_uid()) is None
    assert uuid7_fault(uuid.uuid4().bytes) == "version nibble 4, not 7"
    wrong_variant = bytearray(uuid7_bytes())
    wrong_variant[8] &= 0x3F
    assert uuid7_fault(bytes(wrong_variant)) == "variant bits 00, not 10 (RFC 9562)"


@pytest.mark.parametrize("size", [64, 127, 128, 129, 130, 16_383, 16_384, 16_385, 65_536])
def test_padded_heartbeat_has_exactly_the_size(size: int) -> None:
    assert padded_heartbeat(size).ByteSize() == size


def test_padded_heartbeat_refuses_a_size_below_the_bare_message() -> None:
    with pytest.raises(ValueError):
        padded_heartbeat(10)


@pytest.mark.parametrize("body", UNFRAMED_BODIES)
def test_unframed_bodies_have_no_readable_header(body: bytes) -> None:
    with pytest.raises(FramingError):
        ws_unframe(body)
    assert BadInput(Kind.UNFRAMED, body).malformation() is not None


@settings(max_examples=100, deadline=None)
@given(bad_inputs(max_bytes=1 << 20))
def test_http_inputs_are_never_unframed(bad: BadInput) -> None:
    assert bad.kind is not Kind.UNFRAMED
