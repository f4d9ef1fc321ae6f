"""No rule excused by a run that lacked an option or by a target that failed to answer.

- A Fleet rule one of whose cases needs a token the run was not given is not
  judged (with that option as the remedy) once every other case held; a
  broken case still fails it; the reference given both tokens judges all.
- SRV-ERR-EXCL is not applicable only when every probe got a normal reply (or
  a 4xx without a body); throttling is honoured, anything else is not judged.
- Only 404/405 or a 2xx that is not Fleet's make the Fleet API absent; a
  proxy's 502, 429, 401/403 leave its rules not judged.
- The SRV-AUTH-401 remedy names exactly the header names taken for credentials.

Suite test functions run in-process against the reference Fleet API (or small
aiohttp apps) on 127.0.0.1, or against scripted stand-ins for the drivers.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiohttp import web

from conformance.drivers import Exchange, Problem
from conformance.drivers.exchange import Attempt
from conformance.fleet.client import FleetClient
from conformance.outcomes import NotApplicable, NotJudged
from conformance.suite import test_fleet_server as fleet_suite
from conformance.suite import test_server_access, test_server_hygiene
from conformance.target import Transport
from conformance.verdicts import Findings, Violation, Violations
from conformance.wire import AgentToServer, ErrorType
from fixtures.reference.fleet_api import FleetApi, add_routes
from fixtures.reference.fleet_twins import InvalidToken403
from fixtures.reference.logic import OpAMPLogic, error_reply
from fixtures.reference.twins import ErrorWithFields
from tests.misbehaving import AiohttpServer
from tests.test_vacuous_passes import FakeSession, NeverErrors, StandInDriver, ends

HTTP = Transport.HTTP
TOKEN = base64.b64encode(b"not-excused-id:not-excused-secret").decode()
DISABLED = base64.b64encode(b"disabled-id:disabled-secret").decode()
AGENT = "Elastic Agent v8.15.0"


def judges(test: Callable[..., None], *args: Any) -> None:
    """Run a suite test that must judge: ending without judging fails (not shown as skipped)."""
    try:
        test(*args)
    except pytest.skip.Exception as exc:
        pytest.fail(f"expected a judged outcome, the test ended {type(exc).__name__}: {exc}")


# --- Fleet: cases dropped for lack of a token ---------------------------------------


@pytest.fixture
def fleet_url() -> Iterator[Callable[[type[FleetApi]], str]]:
    """Serve the reference Fleet API (or a twin) given TOKEN, with DISABLED disabled."""
    servers: list[AiohttpServer] = []

    def serve(kind: type[FleetApi] = FleetApi) -> str:
        api = kind()
        api.enrollment_tokens = {TOKEN, DISABLED}
        api.disabled_tokens = {DISABLED}
        api.checkin_hold = 0.1
        app = web.Application()
        add_routes(app, api)
        server = AiohttpServer(app).start()
        servers.append(server)
        return server.url("")

    try:
        yield serve
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def fleet_for(
    fleet_url: Callable[[type[FleetApi]], str],
) -> Iterator[Callable[..., fleet_suite.Fleet]]:
    """A ``Fleet`` on a served API, given the tokens the case names."""
    clients: list[FleetClient] = []

    def make(
        kind: type[FleetApi] = FleetApi, *, token: str | None, disabled: str | None
    ) -> fleet_suite.Fleet:
        client = FleetClient(fleet_url(kind), timeout=5.0)
        clients.append(client)
        return fleet_suite.Fleet(client, token, disabled, AGENT)

    try:
        yield make
    finally:
        for client in clients:
            client.close()


def test_enrol_401_with_both_tokens_judges_every_case(
    fleet_for: Callable[..., fleet_suite.Fleet],
) -> None:
    judges(
        fleet_suite.test_enrolment_with_a_wrong_token_gets_401,
        fleet_for(token=TOKEN, disabled=DISABLED),
    )


def test_enrol_401_without_the_disabled_token_is_not_judged(
    fleet_for: Callable[..., fleet_suite.Fleet],
) -> None:
    with ends(NotJudged) as caught:
        fleet_suite.test_enrolment_with_a_wrong_token_gets_401(
            fleet_for(token=TOKEN, disabled=None)
        )
    assert "disabled enrollment token" in caught.value.reason
    assert "6 case(s) judged and held" in caught.value.reason
    assert caught.value.remedy == fleet_suite.DISABLED_TOKEN_REMEDY
    assert caught.value.remedy.startswith("--disabled-enrollment-token=")


def test_enrol_401_without_any_token_names_both_options(
    fleet_for: Callable[..., fleet_suite.Fleet],
) -> None:
    with ends(NotJudged) as caught:
        fleet_suite.test_enrolment_with_a_wrong_token_gets_401(fleet_for(token=None, disabled=None))
    assert "--disabled-enrollment-token=" in caught.value.remedy
    assert "--enrollment-token=" in caught.value.remedy
    assert "access key" in caught.value.reason and "one character changed" in caught.value.reason


def test_enrol_401_broken_case_fails_although_a_case_was_dropped(
    fleet_for: Callable[..., fleet_suite.Fleet],
) -> None:
    with pytest.raises(Violations) as caught:
        fleet_suite.test_enrolment_with_a_wrong_token_gets_401(
            fleet_for(InvalidToken403, token=TOKEN, disabled=None)
        )
    assert [v.req_id for v in caught.value.items] == ["FLEET-SRV-ENROLL-401"]
    assert "HTTP 403" in caught.value.items[0].message


def test_checkin_401_without_a_token_is_not_judged(
    fleet_for: Callable[..., fleet_suite.Fleet],
) -> None:
    with ends(NotJudged) as caught:
        fleet_suite.test_checkin_with_a_wrong_key_is_refused(fleet_for(token=None, disabled=None))
    assert "agent id its access key does not belong to" in caught.value.reason
    assert caught.value.remedy == fleet_suite.TOKEN_REMEDY
    judges(
        fleet_suite.test_checkin_with_a_wrong_key_is_refused, fleet_for(token=TOKEN, disabled=None)
    )


def test_checkin_401_broken_case_fails_without_a_token() -> None:
    async def checkin(request: web.Request) -> web.Response:
        return web.json_response(
            {"statusCode": 500, "error": "Internal", "message": "boom"}, status=500
        )

    app = web.Application()
    app.router.add_post("/api/fleet/agents/{agent_id}/checkin", checkin)
    with AiohttpServer(app) as server:
        fleet = fleet_suite.Fleet(FleetClient(server.url(""), timeout=5.0), None, None, AGENT)
        try:
            with pytest.raises(Violations) as caught:
                fleet_suite.test_checkin_with_a_wrong_key_is_refused(fleet)
        finally:
            fleet.client.close()
    assert caught.value.items[0].req_id == "FLEET-SRV-CHECKIN-401"


def test_no_5xx_without_a_token_is_not_judged(
    fleet_for: Callable[..., fleet_suite.Fleet],
) -> None:
    with ends(NotJudged) as caught:
        fleet_suite.test_odd_requests_get_no_5xx(fleet_for(token=None, disabled=None))
    assert "real enrollment token" in caught.value.reason
    assert caught.value.remedy == fleet_suite.TOKEN_REMEDY


def test_dropped_case_with_only_another_rules_finding_is_not_a_pass() -> None:
    """A SHOULD finding of another rule must not turn the dropped rule into a pass."""
    dropped = fleet_suite.Dropped("FLEET-SRV-ENROLL-401")
    dropped.add("a disabled enrollment token gets 401", "no option", "--x=1")
    findings = Findings()
    findings.add("FLEET-SRV-ERROR-SHAPE", "text error body")
    with ends(NotJudged) as caught:
        dropped.settle(findings, judged=3)
    assert "also seen, FLEET-SRV-ERROR-SHAPE: text error body" in caught.value.reason
    assert caught.value.remedy == "--x=1"
    judges(fleet_suite.Dropped("FLEET-SRV-ENROLL-401").settle, Findings(), 3)  # none dropped


# --- Fleet: is the API there? ---------------------------------------------------------


def _status_app(status: int, body: str, headers: dict[str, str] | None = None) -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=status, text=body, headers=headers or {})

    app = web.Application()
    app.router.add_get("/api/status", answer)
    return app


def _absent(app: web.Application, token: str | None = None) -> Any:
    with AiohttpServer(app) as server:
        client = FleetClient(server.url(""), timeout=2.0)
        try:
            session = FakeSession([], enrollment_token=token)
            return fleet_suite._absent_reason(client, session)  # type: ignore[arg-type]
        finally:
            client.close()


FLEET_STATUS = '{"name": "fleet-server", "status": "HEALTHY"}'


@pytest.mark.parametrize(
    "status, body",
    [
        (502, "<html><body>502 Bad Gateway</body></html>"),
        (500, "internal error"),
        (503, "Service Unavailable"),
        (429, "slow down"),
        (401, "unauthorized"),
        (403, "forbidden"),
        (302, ""),
    ],
)
def test_fleet_status_answer_that_shows_nothing_is_not_judged(status: int, body: str) -> None:
    absent = _absent(_status_app(status, body))
    assert isinstance(absent, NotJudged), absent
    assert f"HTTP {status}" in absent.reason and "--target" in absent.remedy


@pytest.mark.parametrize(
    "status, body", [(404, "not found"), (405, "method not allowed"), (200, "<html>hi</html>")]
)
def test_fleet_status_answer_showing_no_fleet_api_is_not_applicable(status: int, body: str) -> None:
    absent = _absent(_status_app(status, body))
    assert isinstance(absent, NotApplicable), absent
    assert f"HTTP {status}" in absent.evidence


def test_fleet_status_404_with_an_enrollment_token_is_not_judged() -> None:
    absent = _absent(_status_app(404, "not found"), token=TOKEN)
    assert isinstance(absent, NotJudged) and "--enrollment-token" in absent.reason


@pytest.mark.parametrize(
    "status, body, headers",
    [
        (200, FLEET_STATUS, None),
        (503, '{"name": "fleet-server", "status": "DEGRADED"}', None),
        (401, "unauthorized", {"Elastic-Api-Version": "2023-06-01"}),
    ],
)
def test_fleet_status_answered_by_fleet_means_the_api_is_there(
    status: int, body: str, headers: dict[str, str] | None
) -> None:
    assert _absent(_status_app(status, body, headers)) is None


def test_fleet_status_answer_that_is_not_fleets_with_a_token_is_judged() -> None:
    assert _absent(_status_app(502, "bad gateway"), token=TOKEN) is None


# --- SRV-ERR-EXCL: only a plain answer shows "no error_response" ------------------------


Answer = Callable[[AgentToServer, int], Exchange]


class Scripted(StandInDriver):
    """Stands in for a driver: ``answer(msg, n)`` says what the n-th send of ``msg`` gets."""

    transport = "http"

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.tries: dict[bytes, int] = {}

    def send(self, msg: AgentToServer, *, timeout: float | None = None) -> Exchange:
        key = msg.SerializeToString()
        self.tries[key] = self.tries.get(key, 0) + 1
        return self.answer(msg, self.tries[key])


class ScriptedClients:
    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.headers: list[tuple[str, str]] = []

    def open(self, transport: Transport, headers: list[tuple[str, str]] | None = None) -> Any:
        return Scripted(self.answer)


def _attempt(msg: AgentToServer) -> Attempt:
    return Attempt("http", msg, msg.ByteSize())


def _logic_answer(logic: OpAMPLogic) -> Answer:
    return lambda msg, _n: _attempt(msg).finish(status=200, reply=logic.handle(msg))


def _throttled_first(then: Answer, status: int = 503) -> Answer:
    def answer(msg: AgentToServer, n: int) -> Exchange:
        if n == 1:
            return _attempt(msg).finish(status=status, headers={"Retry-After": "0"})
        return then(msg, n)

    return answer


def _status(status: int, body: bytes = b"") -> Answer:
    return lambda msg, _n: _attempt(msg).finish(
        status=status, reply_bytes=len(body), detail=body.decode()
    )


def _err_excl(answer: Answer) -> None:
    opamp: Any = ScriptedClients(answer)
    test_server_hygiene.test_error_response_stands_alone(opamp, HTTP, None)  # type: ignore[arg-type]


def _err_excl_judges(answer: Answer) -> None:
    judges(_err_excl, answer)


@pytest.mark.parametrize("status", [429, 503])
def test_error_exclusivity_honours_throttling_then_judges(status: int) -> None:
    _err_excl_judges(_throttled_first(_logic_answer(OpAMPLogic()), status))
    with pytest.raises(Violation, match="SRV-ERR-EXCL"):
        _err_excl_judges(_throttled_first(_logic_answer(ErrorWithFields()), status))


def test_error_exclusivity_throttled_to_the_end_is_not_judged() -> None:
    busy: Answer = lambda msg, _n: _attempt(msg).finish(status=429, headers={"Retry-After": "0"})  # noqa: E731
    with ends(NotJudged, match="throttled"):
        _err_excl(busy)


@pytest.mark.parametrize(
    "answer",
    [
        _status(500, b"internal error"),
        _status(502, b"<html>Bad Gateway</html>"),
        _status(400, b"bad request"),  # a 4xx with a body: a proxy's page, perhaps
    ],
    ids=["500", "502", "400-with-body"],
)
def test_error_exclusivity_with_error_statuses_is_not_judged(answer: Answer) -> None:
    with ends(NotJudged) as caught:
        _err_excl(answer)
    assert "HTTP" in caught.value.reason and "--request-timeout" in caught.value.remedy


def test_error_exclusivity_with_drops_and_plain_replies_is_not_judged() -> None:
    logic = NeverErrors()

    def answer(msg: AgentToServer, n: int) -> Exchange:
        if len(msg.instance_uid) != 16:
            return _attempt(msg).finish(problem=Problem.DISCONNECTED, detail="reset by peer")
        return _attempt(msg).finish(status=200, reply=logic.handle(msg))

    with ends(NotJudged) as caught:
        _err_excl(answer)
    assert "2 of 4" in caught.value.reason and "connection dropped" in caught.value.reason


def test_error_exclusivity_with_plain_replies_or_bare_4xx_is_not_applicable() -> None:
    logic = NeverErrors()

    def answer(msg: AgentToServer, n: int) -> Exchange:
        if len(msg.instance_uid) != 16:
            return _attempt(msg).finish(status=400)
        return _attempt(msg).finish(status=200, reply=logic.handle(msg))

    with ends(NotApplicable) as caught:
        _err_excl(answer)
    assert "HTTP 400" in caught.value.evidence and "HTTP 200" in caught.value.evidence


def test_error_exclusivity_counts_a_throttling_error_response() -> None:
    """An UNAVAILABLE error_response is an error_response: judged, not 'none seen'."""
    logic = NeverErrors()

    def answer(msg: AgentToServer, n: int) -> Exchange:
        if n == 1:
            reply = error_reply(msg.instance_uid, ErrorType.UNAVAILABLE, "busy")
            reply.capabilities = 1  # beside the error_response
            return _attempt(msg).finish(status=200, reply=reply)
        return _attempt(msg).finish(status=200, reply=logic.handle(msg))

    with pytest.raises(Violation, match="SRV-ERR-EXCL"):
        _err_excl_judges(answer)


# --- SRV-AUTH-401: the remedy says what counts as a credential ---------------------------


def _listed_in_remedy() -> list[str]:
    found = re.search(r"name contains one of: ([^;]+);", test_server_access.CREDENTIAL_REMEDY)
    assert found, test_server_access.CREDENTIAL_REMEDY
    return [word.strip() for word in found[1].split(",")]


def test_credential_remedy_names_exactly_what_counts_as_a_credential() -> None:
    pattern = test_server_access.CREDENTIAL_NAME
    words = _listed_in_remedy()
    for word in words:  # every word the remedy promises is taken for a credential
        assert pattern.search(f"X-{word.upper()}-Value"), word
    for name in ("Authorization", "X-Api-Key", "X-API_KEY", "Apikey", "Cookie", "X-Auth-Token"):
        assert pattern.search(name), name
        assert any(w in name.lower() for w in words), name
    for name in ("X-Tenant", "Idempotency-Key", "X-Cache-Key"):  # a bare "key" is no credential
        assert not pattern.search(name), name
        assert not any(w in name.lower() for w in words), name
