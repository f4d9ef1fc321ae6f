"""Fleet helpers: judging calls, credentials, durations and the reference's rate limit."""

from __future__ import annotations

import base64

from conformance.drivers.exchange import Attempt, Problem
from conformance.fleet.client import FleetCall, broken, changed_api_key, error_shape_problem
from conformance.suite.test_server_access import corrupt
from fixtures.reference.fleet_api import TokenBucket, parse_duration


def call(status: int | None, body: bytes = b"", problem: Problem | None = None) -> FleetCall:
    exchange = Attempt("http", None, 0).finish(status=status, problem=problem)
    return FleetCall("POST", "/api/fleet/agents/enroll", "no Authorization", exchange, body=body)


def test_error_shape_wants_json_with_matching_status_code() -> None:
    good = b'{"statusCode": 401, "error": "Unauthorized", "message": "no"}'
    assert error_shape_problem(call(401, good)) is None
    assert "statusCode 400" in (error_shape_problem(call(401, good.replace(b"401", b"400"))) or "")
    assert "not a JSON object" in (error_shape_problem(call(401, b"Unauthorized")) or "")
    assert "lacks string message" in (
        error_shape_problem(call(400, b'{"statusCode": 400, "error": "x"}')) or ""
    )
    assert error_shape_problem(call(404, b"404 page not found")) is None  # the router's
    assert error_shape_problem(call(200, b"{}")) is None


def test_broken_means_5xx_without_reason_hang_or_reset() -> None:
    assert broken(call(500, b"oops")) == "HTTP 500"
    assert broken(call(503, b'{"message": "busy"}')) is None
    assert broken(call(503, b"")) == "HTTP 503"
    assert broken(call(None, problem=Problem.TIMEOUT)) == "no answer in time"
    assert broken(call(401)) is None


def test_go_durations() -> None:
    assert parse_duration("2s") == 2.0
    assert parse_duration("1m30s") == 90.0
    assert parse_duration("500ms") == 0.5
    assert parse_duration("") is None
    assert parse_duration("soon") is None
    assert parse_duration("5") is None


def test_token_bucket_refuses_past_the_burst() -> None:
    bucket = TokenBucket(burst=3, interval=60.0)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


def test_changed_tokens_stay_well_formed() -> None:
    token = base64.b64encode(b"key-id:secretw").decode()
    changed = changed_api_key(token)
    assert changed is not None and changed != token
    assert base64.b64decode(changed).decode() == "key-id:secretx"
    assert changed_api_key("not base64!") is None
    assert corrupt(f"ApiKey {token}") == f"ApiKey {changed}"
    jwt = "Bearer aaaa.bbbb.cccw"
    assert corrupt(jwt) != jwt and corrupt(jwt).endswith("w")
