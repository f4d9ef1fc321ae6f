"""The hostile-input generator: which inputs count as malformed, and fresh uids."""

from __future__ import annotations

from hypothesis import given, settings

from conformance.hostile import UID_LENGTH, BadInput, Kind, bad_inputs
from conformance.messages import full_status, heartbeat, new_uid
from conformance.wire import parse_agent_to_server


def test_malformation_is_decided_by_decoding_not_by_kind() -> None:
    valid = full_status(new_uid(), 3).SerializeToString()
    assert BadInput(Kind.TRUNCATED, valid[:5]).malformation() is not None
    assert BadInput(Kind.UNKNOWN_FIELDS, valid + b"\xa0\x06\x01").malformation() is None
    assert BadInput(Kind.EMPTY, b"").malformation() == "instance_uid of 0 bytes"
    short = heartbeat(b"\x01" * 5, 0).SerializeToString()
    assert BadInput(Kind.BAD_UID, short).malformation() == "instance_uid of 5 bytes"


def test_transport_level_faults_are_not_judged_as_bad_requests() -> None:
    valid = full_status(new_uid(), 0).SerializeToString()
    assert BadInput(Kind.CONTENT_TYPE, valid, content_type="text/plain").malformation() is None
    assert BadInput(Kind.FAKE_GZIP, b"\x00garbage", gzip_claimed=True).malformation() is None


def test_fresh_uid_replaces_the_uid_and_keeps_the_rest() -> None:
    msg = full_status(b"\x00" * UID_LENGTH, 9)
    bad = BadInput(Kind.FLIPPED, msg.SerializeToString()).with_fresh_uid()
    again = parse_agent_to_server(bad.body)
    assert again.instance_uid != b"\x00" * UID_LENGTH and again.sequence_num == 9
    short = BadInput(Kind.BAD_UID, heartbeat(b"\x01" * 5, 0).SerializeToString())
    assert short.with_fresh_uid() is short


@settings(max_examples=200, deadline=None)
@given(bad_inputs(max_bytes=1 << 20))
def test_generated_inputs_stay_within_the_limit(bad: BadInput) -> None:
    assert len(bad.body) <= (1 << 20)
    assert repr(bad).startswith("BadInput(")


@settings(max_examples=100, deadline=None)
@given(bad_inputs(max_bytes=1 << 20, websocket=True))
def test_websocket_inputs_have_no_http_only_kinds(bad: BadInput) -> None:
    assert bad.kind not in (Kind.CONTENT_TYPE, Kind.FAKE_GZIP)
