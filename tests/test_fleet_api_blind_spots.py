"""Fleet API rules added after mutation analysis, against the reference and its twins.

In-process: the reference Fleet API (or a twin) on aiohttp, and the suite's
test functions called directly, as ``tests/test_server_not_excused.py`` does.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator

import pytest
from aiohttp import web

from conformance.fleet.client import ENROLL_PATH, FleetClient, enrol_body
from conformance.outcomes import NotApplicable
from conformance.suite import test_fleet_server as fleet_suite
from conformance.verdicts import Violation, Violations
from fixtures.reference.fleet_api import FleetApi, add_routes
from fixtures.reference.fleet_twins import BadUserAgent401, Oversize400, RateLockout
from tests.misbehaving import AiohttpServer

TOKEN = base64.b64encode(b"blind-spot-id:blind-spot-secret").decode()
AGENT = "Elastic Agent v8.15.0"


@pytest.fixture
def fleet_for() -> Iterator[Callable[[type[FleetApi]], fleet_suite.Fleet]]:
    """A ``Fleet`` on the reference Fleet API (or a twin) served in-process, given TOKEN."""
    servers: list[AiohttpServer] = []
    clients: list[FleetClient] = []

    def make(kind: type[FleetApi] = FleetApi) -> fleet_suite.Fleet:
        api = kind()
        api.enrollment_tokens = {TOKEN}
        api.checkin_hold = 0.1
        app = web.Application()
        add_routes(app, api)
        server = AiohttpServer(app).start()
        servers.append(server)
        client = FleetClient(server.url(""), timeout=5.0)
        clients.append(client)
        return fleet_suite.Fleet(client, TOKEN, None, AGENT)

    try:
        yield make
    finally:
        for client in clients:
            client.close()
        for server in servers:
            server.stop()


@pytest.mark.parametrize(
    ("status", "wrong"),
    [
        (400, False),
        (415, False),
        (200, False),
        (None, False),
        (502, False),
        (401, True),
        (403, True),
        (302, True),
        (399, True),
        (101, True),
    ],
)
def test_bad_request_problem(status: int | None, wrong: bool) -> None:
    assert (fleet_suite.bad_request_problem(status) is not None) is wrong


def test_odd_burst_answers() -> None:
    assert not fleet_suite._odd_in_burst(401)
    assert not fleet_suite._odd_in_burst(429)
    assert not fleet_suite._odd_in_burst(503)
    assert not fleet_suite._odd_in_burst(None)
    assert fleet_suite._odd_in_burst(428)
    assert fleet_suite._odd_in_burst(200)
    assert fleet_suite._odd_in_burst(403)


def test_bad_bodies_pass_the_reference(fleet_for: Callable[..., fleet_suite.Fleet]) -> None:
    fleet_suite.test_malformed_bodies_are_not_refused_as_unauthorised(fleet_for())


def test_user_agent_answered_401_is_a_bad_body_finding(
    fleet_for: Callable[..., fleet_suite.Fleet],
) -> None:
    with pytest.raises(Violation) as caught:
        fleet_suite.test_malformed_bodies_are_not_refused_as_unauthorised(
            fleet_for(BadUserAgent401)
        )
    assert caught.value.req_id == "FLEET-SRV-BAD-BODY"
    assert "User-Agent" in caught.value.message and "HTTP 401" in caught.value.message


def test_rate_limit_recovers_on_the_reference(
    fleet_for: Callable[..., fleet_suite.Fleet],
) -> None:
    fleet_suite.test_rate_limited_client_gets_through_after_waiting(fleet_for())


def test_rate_lockout_is_a_finding(fleet_for: Callable[..., fleet_suite.Fleet]) -> None:
    with pytest.raises(Violation) as caught:
        fleet_suite.test_rate_limited_client_gets_through_after_waiting(fleet_for(RateLockout))
    assert caught.value.req_id == "FLEET-SRV-RATE-RECOVER"


def test_rate_limit_with_another_4xx_breaks_enrol_401(
    fleet_for: Callable[..., fleet_suite.Fleet], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Refuses428(FleetApi):
        def fail(self, status: int, kind: str, message: str, **headers: str) -> web.Response:
            return super().fail(428 if status == 429 else status, kind, message, **headers)

    with pytest.raises(Violations) as caught:
        fleet_suite.test_rate_limit_answers_say_when_to_retry(fleet_for(Refuses428))
    assert [v.req_id for v in caught.value.items] == ["FLEET-SRV-ENROLL-401"]
    assert "HTTP 428" in caught.value.items[0].message
    assert not caught.value.complete  # FLEET-SRV-RATE saw no 429: not judged, not a pass


def test_rate_limit_without_429_is_not_applicable(
    fleet_for: Callable[..., fleet_suite.Fleet], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fleet_suite, "RATE_MAX_REQUESTS", 30)
    with pytest.raises(NotApplicable):
        fleet_suite.test_rate_limit_answers_say_when_to_retry(fleet_for())


def test_oversized_enrolment_gets_413_from_the_reference(
    fleet_for: Callable[..., fleet_suite.Fleet],
) -> None:
    fleet_suite.test_oversized_enrolment_gets_413(fleet_for())


def test_oversized_enrolment_answered_400_is_a_finding(
    fleet_for: Callable[..., fleet_suite.Fleet],
) -> None:
    with pytest.raises(Violation) as caught:
        fleet_suite.test_oversized_enrolment_gets_413(fleet_for(Oversize400))
    assert caught.value.req_id == "FLEET-SRV-413" and "HTTP 400" in caught.value.message


def test_large_valid_enrolment_is_read_whole(
    fleet_for: Callable[..., fleet_suite.Fleet],
) -> None:
    """A valid body larger than one network read (but within the limit) is taken."""
    fleet = fleet_for()
    body = enrol_body()
    body["metadata"]["local"]["padding"] = "x" * 300_000
    call = fleet.client.call("POST", ENROLL_PATH, api_key=TOKEN, json_body=body, agent=AGENT)
    assert call.status == 200, call.summary()
