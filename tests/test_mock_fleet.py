"""The mock Fleet server executes its fault plan over real HTTP, and times every arrival."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from conformance.agent.mock_fleet import Fault, MockFleet

TOKEN = "mock-token"
ENROLL = "/api/fleet/agents/enroll"


@pytest.fixture
def mock() -> Iterator[MockFleet]:
    with MockFleet(TOKEN, checkin_hold=0.2, hang_limit=1.0) as server:
        yield server


def enrol(mock: MockFleet, token: str = TOKEN, timeout: float = 5.0) -> httpx.Response:
    return httpx.post(
        mock.url + ENROLL,
        headers={"Authorization": f"ApiKey {token}"},
        json={"type": "PERMANENT", "metadata": {"local": {}}},
        timeout=timeout,
    )


def test_plan_then_standing_fault(mock: MockFleet) -> None:
    mock.plan("enroll", [Fault("503", 2), Fault("500")], then=Fault("401"))
    first = enrol(mock)
    assert first.status_code == 503 and first.headers["Retry-After"] == "2"
    assert first.json()["statusCode"] == 503
    assert enrol(mock).status_code == 500
    assert enrol(mock).status_code == 401
    assert enrol(mock).status_code == 401
    times = [a.at for a in mock.arrivals("enroll")]
    assert len(times) == 4 and times == sorted(times)


def test_successful_enrolment_and_checkins(mock: MockFleet) -> None:
    item = enrol(mock).json()["item"]
    assert item["status"] == "online" and item["access_api_key"]
    assert enrol(mock, token="wrong").status_code == 401
    mock.plan("checkin", [Fault("warning")])
    url = f"{mock.url}/api/fleet/agents/{item['id']}/checkin"
    key = {"Authorization": f"ApiKey {item['access_api_key']}"}
    started = time.monotonic()
    warned = httpx.post(url, headers=key, json={"status": "online"}, timeout=5)
    assert warned.status_code == 200 and "Warning" in warned.headers
    assert time.monotonic() - started >= 0.2  # held like a long poll
    clean = httpx.post(url, headers=key, json={"status": "online"}, timeout=5)
    assert clean.status_code == 200 and "Warning" not in clean.headers
    assert clean.json()["action"] == "checkin"
    other = httpx.post(url, headers={"Authorization": "ApiKey nope"}, json={}, timeout=5)
    assert other.status_code == 401


def test_reset_and_hang(mock: MockFleet) -> None:
    mock.plan("enroll", [Fault("reset"), Fault("hang"), Fault("hang")])
    with pytest.raises(httpx.TransportError):
        enrol(mock)
    with pytest.raises(httpx.ReadTimeout):
        enrol(mock, timeout=0.3)  # the client gives up first
    started = time.monotonic()
    with pytest.raises(httpx.TransportError):
        enrol(mock, timeout=5)  # the mock gives up at its hang limit
    assert time.monotonic() - started < 4
    assert [a.answer for a in mock.arrivals("enroll")] == ["reset", "hang", "hang"]


def test_status_endpoint(mock: MockFleet) -> None:
    assert httpx.get(mock.url + "/api/status", timeout=5).json()["status"] == "HEALTHY"


def test_chunked_bodies_are_read_whole(mock: MockFleet) -> None:
    def pieces() -> Iterator[bytes]:
        yield b'{"type": "PERMANENT", '
        yield b'"metadata": {"local": {}}}'

    for _ in range(2):  # the second request on the same connection is read cleanly too
        with httpx.Client(timeout=5) as client:
            reply = client.post(
                mock.url + ENROLL, headers={"Authorization": f"ApiKey {TOKEN}"}, content=pieces()
            )
            assert reply.status_code == 200
            again = client.post(
                mock.url + ENROLL, headers={"Authorization": f"ApiKey {TOKEN}"}, content=pieces()
            )
            assert again.status_code == 200
    assert len(mock.arrivals("enroll")) == 4
