"""Judging helpers: throttling answers and error exclusivity."""

from __future__ import annotations

import pytest

from conformance.checks import (
    THROTTLE_WAIT_CAP,
    Transcript,
    fields_set_beside_error,
    retry_throttled,
    throttle_wait,
)
from conformance.drivers.exchange import Attempt, Exchange
from conformance.wire import ErrorType, ServerToAgent


def exchange(
    status: int, headers: dict[str, str] | None = None, reply: ServerToAgent | None = None
) -> Exchange:
    return Attempt("http", None, 0).finish(status=status, headers=headers, reply=reply)


def test_throttle_wait_reads_retry_after_and_retry_info() -> None:
    assert throttle_wait(exchange(200, reply=ServerToAgent())) is None
    assert throttle_wait(exchange(429)) == 1.0
    assert throttle_wait(exchange(503, {"Retry-After": "2"})) == 2.0
    assert throttle_wait(exchange(429, {"retry-after": "3600"})) == THROTTLE_WAIT_CAP
    assert throttle_wait(exchange(429, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 1.0
    busy = ServerToAgent()
    busy.error_response.type = ErrorType.UNAVAILABLE  # type: ignore[assignment]
    busy.error_response.retry_info.retry_after_nanoseconds = 250_000_000
    assert throttle_wait(exchange(200, reply=busy)) == 0.25
    bad = ServerToAgent()
    bad.error_response.type = ErrorType.BAD_REQUEST  # type: ignore[assignment]
    assert throttle_wait(exchange(400, reply=bad)) is None


def test_retry_throttled_resends_then_gives_up_with_a_skip() -> None:
    answers = [exchange(429, {"Retry-After": "0"}), exchange(200, reply=ServerToAgent())]
    resets: list[int] = []
    got = retry_throttled(Transcript(), lambda: answers.pop(0), lambda: resets.append(1))
    assert got.status == 200 and resets == [1]
    with pytest.raises(pytest.skip.Exception, match="throttled"):
        retry_throttled(Transcript(), lambda: exchange(503, {"Retry-After": "0"}), lambda: None)


def test_fields_beside_error() -> None:
    reply = ServerToAgent(capabilities=5, flags=1)
    reply.error_response.error_message = "x"
    reply.agent_identification.new_instance_uid = b"u" * 16
    assert fields_set_beside_error(reply) == ["flags", "capabilities", "agent_identification"]
