"""The Fleet REST API of a fleet-server: enrolment, check-in, acks and status.

The API lives at the target's base URL (scheme://host:port of ``--target``).
On targets that do not serve it (``GET /api/status`` answers 404 or 405, or a
2xx that is not Fleet's: neither the ``Elastic-Api-Version`` header nor a
Fleet status body, and no ``--enrollment-token`` says otherwise) these rules
are *not applicable*, with that answer as evidence; when the status call gets
no answer, or an answer that shows nothing either way (a 5xx such as a
proxy's 502, 429, 401/403), they are *not judged*. Rules that need an
enrolled agent need ``--enrollment-token`` (the embedded reference provides
one, and ``--disabled-enrollment-token`` too): without it they are *not
judged*, with that option as the remedy; so is a rule one of whose cases
needs a token the run was not given, once every other case was judged and
held.

These tests enrol agents on the target (tagged ``fleet-conformance``).
"""

from __future__ import annotations

import collections
import functools
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import NoReturn

import pytest

from conformance.checks import ShouldTally
from conformance.fleet.client import (
    ENROLL_PATH,
    OLDEST_AGENT_VERSION,
    STATUS_PATH,
    FleetCall,
    FleetClient,
    FleetTranscript,
    acks_path,
    api_key,
    broken,
    changed_api_key,
    checkin_path,
    enrol_body,
    error_shape_problem,
    user_agent,
)
from conformance.fleet.requests import (
    EDGE_BODIES,
    NOT_UTF8_KEY,
    REAL_TOKEN,
    OddRequest,
    odd_requests,
)
from conformance.outcomes import NotApplicable, NotJudged, not_applicable, not_judged
from conformance.plugin.targets import TargetSession
from conformance.profiles import active
from conformance.properties import conformance_property
from conformance.verdicts import Findings, Violation, Violations, first_per_rule, require

#: Resends of a request answered 429 before the test gives up (not judged).
RATE_RETRIES = 3
#: Longest wait honoured for one 429, in seconds.
RATE_WAIT_CAP = 5.0
#: fleet-server holds a check-in at least a minute whatever poll_timeout says
#: (it takes poll_timeout minus 2 minutes, floored at 1 minute): allowed.
MIN_SERVER_HOLD = 60.0
#: poll_timeout the suite asks for, in seconds.
POLL_SECONDS = 2.0

_presence: dict[str, NotApplicable | NotJudged | None] = {}

#: The remedy for rules that need an enrolled agent.
TOKEN_REMEDY = "--enrollment-token=<an enrollment API key of the target (base64 of id:key)>"
#: The remedy for the disabled-token case of FLEET-SRV-ENROLL-401.
DISABLED_TOKEN_REMEDY = (
    "--disabled-enrollment-token=<an enrollment API key of the target that exists but is"
    " disabled (base64 of id:key)>"
)


@dataclass
class Dropped:
    """The cases of one rule this run could not judge (an option was not given, say).

    A test judges every case it can, then :meth:`settle` raises what it found:
    a broken case of the rule still fails it; otherwise a dropped case leaves
    the rule *not judged*, naming the case and the option that would judge it,
    instead of a pass that skipped part of the rule.
    """

    rule: str
    #: (the case, why it was not judged, the remedy)
    cases: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, case: str, reason: str, remedy: str) -> None:
        self.cases.append((case, reason, remedy))

    def settle(self, findings: Findings, judged: int) -> None:
        """Raise the findings, or end *not judged* when a case was dropped and none failed."""
        findings.items = first_per_rule(findings.items)
        if not self.cases or any(v.req_id == self.rule for v in findings.items):
            findings.raise_if_any()
            if not self.cases:
                return
        dropped = "; ".join(f"{case} ({reason})" for case, reason, _ in self.cases)
        others = "".join(f"; also seen, {v.req_id}: {v.message}" for v in findings.items)
        remedies = " and ".join(dict.fromkeys(remedy for _, _, remedy in self.cases))
        not_judged(
            f"{self.rule}: {judged} case(s) judged and held, but not every case of the rule"
            f" could be judged: {dropped}{others}",
            remedies,
        )


@dataclass
class Fleet:
    """The Fleet API of the target, with what the suite knows about it."""

    client: FleetClient
    token: str | None
    disabled_token: str | None
    agent: str

    def call(self, transcript: FleetTranscript, send: Callable[[], FleetCall]) -> FleetCall:
        """One call, honouring 429 answers (``Retry-After``, capped); then recorded."""
        for _ in range(RATE_RETRIES + 1):
            call = transcript.add(send())
            if call.status != 429:
                return call
            wait = _retry_after(call) or 1.0
            time.sleep(min(wait, RATE_WAIT_CAP))
        not_judged(
            f"the Fleet API kept answering 429 ({RATE_RETRIES + 1} tries of one request), so"
            " the rule could not be judged under this load",
            "lower the load (fewer -n workers, e.g. -n 1) or raise the target's rate limit,"
            " and run again",
        )

    def enrol(self, transcript: FleetTranscript, token: str, note: str = "") -> FleetCall:
        return self.call(
            transcript,
            lambda: self.client.call(
                "POST",
                ENROLL_PATH,
                api_key=token,
                json_body=enrol_body(),
                agent=self.agent,
                note=note,
            ),
        )

    def checkin(
        self, transcript: FleetTranscript, agent_id: str, key: str, *, ack_token: str | None = None
    ) -> FleetCall:
        body: dict[str, object] = {
            "status": "online",
            "message": "fleet-conformance",
            "poll_timeout": f"{POLL_SECONDS:g}s",
        }
        if ack_token is not None:
            body["ack_token"] = ack_token
        timeout = MIN_SERVER_HOLD + POLL_SECONDS + active().request_timeout
        return self.call(
            transcript,
            lambda: self.client.call(
                "POST",
                checkin_path(agent_id),
                api_key=key,
                json_body=body,
                agent=self.agent,
                timeout=timeout,
            ),
        )

    def enrolled(self, transcript: FleetTranscript) -> tuple[str, str]:
        """(agent id, access key) of a fresh agent; ends the test *not judged* when impossible."""
        if self.token is None:
            not_judged("needs an enrolled agent, and no --enrollment-token was given", TOKEN_REMEDY)
        call = self.enrol(transcript, self.token)
        item = call.json.get("item") if isinstance(call.json, dict) else None
        agent_id = item.get("id") if isinstance(item, dict) else None
        key = item.get("access_api_key") if isinstance(item, dict) else None
        if call.status != 200 or not isinstance(agent_id, str) or not isinstance(key, str):
            problem = (
                f"failed (HTTP {call.status})"
                if call.status != 200
                else "answered without string item.id and item.access_api_key"
            )
            not_judged(
                f"needs an enrolled agent, and enrolment with --enrollment-token {problem}"
                " (FLEET-SRV-ENROLL-OK judges the enrolment itself)",
                "check that --enrollment-token is an active enrollment API key of the target,"
                " and run again",
            )
        return agent_id, key


def _retry_after(call: FleetCall) -> float | None:
    value = call.exchange.header("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _absent_reason(client: FleetClient, session: TargetSession) -> NotApplicable | NotJudged | None:
    """Why the target's Fleet API is not tested, or ``None`` when it has one.

    *Not applicable* only when ``GET /api/status`` shows there is none: 404 or
    405, or a 2xx answer that is not Fleet's (no ``Elastic-Api-Version``, no
    Fleet status body), and no enrollment token says the API is there. An
    answer that is Fleet's (or any answer, when a token was given) means the
    API is there and its rules are judged. Anything else (a 5xx such as a
    proxy's 502, 429, 401/403, a redirect, no answer) shows nothing about the
    Fleet API: *not judged*, never an excuse.
    """
    call = client.call("GET", STATUS_PATH)
    url = f"{client.base_url}{STATUS_PATH}"
    if call.exchange.problem is not None and call.status is None:
        detail = f": {call.exchange.detail}" if call.exchange.detail else ""
        return NotJudged(
            f"whether the target serves the Fleet API is unknown: GET {url} got no answer"
            f" ({call.exchange.problem.value}{detail})",
            "check that the target's Fleet API answers at the --target base URL within"
            " --request-timeout (or raise it), and run again",
        )
    doc = call.json
    fleet_like = call.exchange.header("Elastic-Api-Version") is not None or (
        isinstance(doc, dict) and "status" in doc and "name" in doc
    )
    status = call.status or 0
    if status in (404, 405):
        if session.enrollment_token:
            return NotJudged(
                f"--enrollment-token says the target serves the Fleet API, but GET {url}"
                f" answered HTTP {status}",
                "give the base URL the Fleet API is served at as --target (scheme://host:port"
                " of fleet-server), or leave out --enrollment-token if the target has no"
                " Fleet API, and run again",
            )
        return NotApplicable(
            "the target does not serve the Fleet API",
            f"GET {url} answered HTTP {status}",
        )
    if fleet_like or session.enrollment_token:
        return None
    if 200 <= status < 300:
        return NotApplicable(
            "the target does not serve the Fleet API",
            f"GET {url} answered HTTP {status} without Elastic-Api-Version or a Fleet status body",
        )
    return NotJudged(
        f"whether the target serves the Fleet API is unknown: GET {url} answered HTTP"
        f" {status} without Elastic-Api-Version or a Fleet status body, which shows neither"
        f" that the API is there nor that it is not ({call.summary()})",
        "check that the Fleet API (or whatever answers in front of it: a proxy, a load"
        " balancer) is up and answers GET /api/status at the --target base URL, give"
        " --enrollment-token=<an enrollment API key of the target> if it serves the Fleet"
        " API, and run again",
    )


def _agent_version(client: FleetClient) -> str:
    """The server's version when /api/status tells it, else the oldest one every server takes."""
    doc = client.call("GET", STATUS_PATH).json
    version = doc.get("version") if isinstance(doc, dict) else None
    number = version.get("number") if isinstance(version, dict) else version
    if isinstance(number, str) and number.count(".") >= 1:
        return number.split("-")[0]
    return OLDEST_AGENT_VERSION


@pytest.fixture
def fleet(conformance_session: TargetSession) -> Iterator[Fleet]:
    base = conformance_session.primary.base_url
    client = FleetClient(base, timeout=active().request_timeout)
    try:
        # A definite answer (there or not) holds for the run; an unclear one is asked again.
        absent = (
            _presence[base] if base in _presence else _absent_reason(client, conformance_session)
        )
        if not isinstance(absent, NotJudged):
            _presence[base] = absent
        if isinstance(absent, NotApplicable):
            not_applicable(absent.reason, absent.evidence)
        if isinstance(absent, NotJudged):
            not_judged(absent.reason, absent.remedy)
        yield Fleet(
            client,
            conformance_session.enrollment_token,
            conformance_session.disabled_enrollment_token,
            user_agent(_agent_version(client)),
        )
    finally:
        client.close()


def _well_formed_unknown() -> str:
    return api_key(uuid.uuid4().hex[:20], uuid.uuid4().hex)


def _check_error_shapes(findings: Findings, transcript: FleetTranscript) -> None:
    for call in transcript.calls:
        problem = error_shape_problem(call)
        if problem is not None:
            findings.add(
                "FLEET-SRV-ERROR-SHAPE",
                f"{call.method} {call.path}: {problem}",
                transcript.render(),
            )
            return


@pytest.mark.requirement("FLEET-SRV-STATUS")
def test_status_answers_json(fleet: Fleet) -> None:
    """GET /api/status: 200 with status HEALTHY, or 503 with another status; JSON either way."""
    transcript = FleetTranscript()
    call = transcript.add(fleet.client.call("GET", STATUS_PATH))
    doc = call.json
    state = doc.get("status") if isinstance(doc, dict) else None
    if call.status == 200 and state == "HEALTHY":
        return
    if call.status == 503 and isinstance(state, str) and state != "HEALTHY":
        return
    raise Violation(
        "FLEET-SRV-STATUS",
        f"HTTP {call.status} with "
        + (f"status {state!r}" if isinstance(doc, dict) else "a body that is not a JSON object")
        + "; expected 200 with status HEALTHY, or 503 with another status",
        transcript.render(),
    )


@pytest.mark.requirement("FLEET-SRV-ENROLL-401", "FLEET-SRV-ERROR-SHAPE")
def test_enrolment_with_a_wrong_token_gets_401(fleet: Fleet) -> None:
    """Missing, unknown, disabled, altered and non-enrollment keys get 401 (malformed: 400 too).

    Every case that can be judged is judged; a case that needs a token the run
    was not given (``--disabled-enrollment-token``, ``--enrollment-token``), or
    an enrolled agent it could not get, leaves the rule *not judged* unless
    another case broke it. Each finding's evidence is its own call, after the
    calls it depends on (the enrolment that made an access key), not every
    probe before it.
    """
    transcript = FleetTranscript()
    dropped = Dropped("FLEET-SRV-ENROLL-401")
    #: (what is sent, Authorization, statuses allowed, the calls the case depends on)
    cases: list[tuple[str, str | None, frozenset[int], list[FleetCall]]] = [
        ("no Authorization header", None, frozenset({401}), []),
        ("well-formed unknown key", f"ApiKey {_well_formed_unknown()}", frozenset({401}), []),
        ("scheme Bearer instead of ApiKey", "Bearer fleet-conformance", frozenset({400, 401}), []),
        ("ApiKey that is not base64 of id:key", "ApiKey !!not-base64!!", frozenset({400, 401}), []),
    ]
    if fleet.disabled_token is not None:
        cases.append(
            ("disabled enrollment token", f"ApiKey {fleet.disabled_token}", frozenset({401}), [])
        )
    else:
        dropped.add(
            "a disabled enrollment token gets 401",
            "no --disabled-enrollment-token was given",
            DISABLED_TOKEN_REMEDY,
        )
    if fleet.token is None:
        for case in (
            "the enrollment token with one character changed gets 401",
            "an agent's access key (not an enrollment key) gets 401",
        ):
            dropped.add(case, "no --enrollment-token was given", TOKEN_REMEDY)
    else:
        changed = changed_api_key(fleet.token)
        if changed is not None:
            cases.append(
                (
                    "enrollment token with one character changed",
                    f"ApiKey {changed}",
                    frozenset({401}),
                    [],
                )
            )
        else:
            dropped.add(
                "the enrollment token with one character changed gets 401",
                "--enrollment-token is not base64 of id:key, so no near miss of it can be made",
                TOKEN_REMEDY,
            )
        made_key = FleetTranscript()
        try:
            _, access_key = fleet.enrolled(made_key)
        except NotJudged as exc:
            dropped.add(
                "an agent's access key (not an enrollment key) gets 401", exc.reason, exc.remedy
            )
        else:
            cases.append(
                (
                    "an agent's access key (not an enrollment key)",
                    f"ApiKey {access_key}",
                    frozenset({401}),
                    made_key.calls,
                )
            )
        transcript.calls.extend(made_key.calls)
    findings = Findings()
    judged = 0
    for label, authorization, allowed, before in cases:
        try:
            call = fleet.call(transcript, _enrol_with(fleet, authorization, label))
        except NotJudged as exc:  # throttled to the end: this case only
            dropped.add(label, exc.reason, exc.remedy)
            continue
        judged += 1
        findings.check(
            "FLEET-SRV-ENROLL-401",
            call.status in allowed,
            f"{label}: HTTP {call.status}, expected {' or '.join(map(str, sorted(allowed)))}",
            FleetTranscript([*before, call]).render(),
        )
    _check_error_shapes(findings, transcript)
    dropped.settle(findings, judged=judged)


def _enrol_with(fleet: Fleet, authorization: str | None, label: str) -> Callable[[], FleetCall]:
    def send() -> FleetCall:
        return fleet.client.call(
            "POST",
            ENROLL_PATH,
            authorization=authorization,
            json_body=enrol_body(),
            agent=fleet.agent,
            note=label,
        )

    return send


@pytest.mark.requirement("FLEET-SRV-ENROLL-OK")
def test_enrolment_succeeds_and_its_key_checks_in(fleet: Fleet) -> None:
    """A correct enrolment gets item.id and item.access_api_key, and the key checks in."""
    if fleet.token is None:
        not_judged("enrolment needs a token, and no --enrollment-token was given", TOKEN_REMEDY)
    transcript = FleetTranscript()
    call = fleet.enrol(transcript, fleet.token)
    item = call.json.get("item") if isinstance(call.json, dict) else None
    agent_id = item.get("id") if isinstance(item, dict) else None
    key = item.get("access_api_key") if isinstance(item, dict) else None
    if call.status != 200 or not isinstance(agent_id, str) or not isinstance(key, str):
        raise Violation(
            "FLEET-SRV-ENROLL-OK",
            f"enrolment answered HTTP {call.status}"
            + ("" if call.status != 200 else " without string item.id and item.access_api_key"),
            transcript.render(),
        )
    checked = fleet.checkin(transcript, agent_id, key)
    if checked.status != 200:
        raise Violation(
            "FLEET-SRV-ENROLL-OK",
            f"the access key from enrolment was refused at check-in: HTTP {checked.status}"
            + (f" ({checked.exchange.problem.value})" if checked.exchange.problem else ""),
            transcript.render(),
        )


#: Events of one ack: two action results, as an agent sends after running actions.
ACK_EVENTS = 2


def _ack_events(agent_id: str) -> list[dict[str, str]]:
    return [
        {
            "type": "ACTION_RESULT",
            "subtype": "ACKNOWLEDGED",
            "agent_id": agent_id,
            "action_id": str(uuid.uuid4()),
            "message": f"fleet-conformance ack {n}",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        }
        for n in range(ACK_EVENTS)
    ]


def ack_problem(call: FleetCall, events: int) -> str | None:
    """What is wrong with the answer to an ack of ``events`` events (None: nothing)."""
    if call.status != 200:
        return f"the ack answered HTTP {call.status}, expected 200"
    body = call.json
    if not isinstance(body, dict) or body.get("action") != "acks":
        return "the ack's 200 answer is not JSON with action 'acks'"
    items = body.get("items")
    if not isinstance(items, list) or len(items) != events:
        count = len(items) if isinstance(items, list) else "no"
        return f"the ack of {events} events answered {count} items, expected one per event"
    refused = [i for i in items if not isinstance(i, dict) or i.get("status") != 200]
    if refused or body.get("errors") is True:
        return f"the ack of well-formed events reported errors: {refused or body.get('errors')}"
    return None


#: Check-in bodies that are malformed though the key is good.
BAD_CHECKINS: tuple[tuple[str, bytes], ...] = (
    ("status missing", b'{"message": "fleet-conformance"}'),
    ("poll_timeout not a duration", b'{"status": "online", "poll_timeout": "soon"}'),
    ("body not JSON", b"{not json"),
)


#: User-Agents fleet-server refuses with 400 (facts: "else 400"), sent with the real token.
BAD_USER_AGENTS: tuple[tuple[str, str], ...] = (
    ("User-Agent not Elastic Agent", "curl/8.0"),
    ("User-Agent of an agent newer than any server", user_agent("99.0.0")),
)
#: A valid enrolment body.
VALID_ENROL = json.dumps(enrol_body()).encode()
#: The case of a body sent with ``Content-Encoding: gzip`` that is plain JSON.
FALSE_GZIP = "Content-Encoding gzip on a body that is not gzip"


@dataclass(frozen=True)
class BadRequest:
    """One malformed request with a good credential (FLEET-SRV-BAD-BODY)."""

    label: str
    path: str
    credential: str
    body: bytes
    agent: str
    #: Whether ``Content-Encoding: gzip`` is claimed for the (plain) body.
    gzip_claim: bool = False


def bad_request_problem(status: int | None) -> str | None:
    """What is wrong with the status a malformed request with a good credential got.

    Refusing it with a 4xx is right, and so is serving it (a server may take a
    near-valid request); 401 and 403 would tell the client its credential is
    bad, and a 1xx or 3xx is no answer to an API call. 5xx, no answer and 429
    are judged elsewhere (FLEET-SRV-NO-5XX, the rate-limit handling).
    """
    if status is None or status >= 500:
        return None
    if status in (401, 403):
        return "a refusal of the credential, which is good"
    if 200 <= status < 300 or 400 <= status < 500:
        return None
    return "neither a 4xx refusal nor a 2xx"


@pytest.mark.requirement("FLEET-SRV-BAD-BODY")
def test_malformed_bodies_are_not_refused_as_unauthorised(fleet: Fleet) -> None:
    """Near-valid enrolments with the real token (odd bodies, a User-Agent the server
    refuses, a false gzip claim), and malformed check-ins with a real key: each may be
    refused with a 4xx, but never with 401 or 403 (the credential is good)."""
    transcript = FleetTranscript()
    agent_id, key = fleet.enrolled(transcript)
    token = fleet.token or ""
    cases: list[BadRequest] = [
        BadRequest(f"enrolment, {label}", ENROLL_PATH, token, body, fleet.agent)
        for label, body in EDGE_BODIES
    ]
    cases += [
        BadRequest(f"enrolment, {label}", ENROLL_PATH, token, VALID_ENROL, agent)
        for label, agent in BAD_USER_AGENTS
    ]
    cases.append(
        BadRequest(
            "enrolment, " + FALSE_GZIP,
            ENROLL_PATH,
            token,
            VALID_ENROL,
            fleet.agent,
            gzip_claim=True,
        )
    )
    # The access key is good only if it works: an empty ack shows it without a long poll.
    probe = fleet.call(
        transcript,
        functools.partial(
            fleet.client.call,
            "POST",
            acks_path(agent_id),
            api_key=key,
            json_body={"events": []},
            agent=fleet.agent,
            note="an empty ack: does the access key work?",
        ),
    )
    key_works = probe.status == 200
    if key_works:
        path = checkin_path(agent_id)
        cases += [
            BadRequest(f"check-in, {label}", path, key, body, fleet.agent)
            for label, body in BAD_CHECKINS
        ]
        online = b'{"status": "online", "poll_timeout": "1s"}'
        cases.append(
            BadRequest(f"check-in, {FALSE_GZIP}", path, key, online, fleet.agent, gzip_claim=True)
        )
    wrong = []
    for case in cases:
        send = functools.partial(
            fleet.client.call,
            "POST",
            case.path,
            api_key=case.credential,
            raw_body=case.body,
            content_type="application/json",
            agent=case.agent,
            headers={"Content-Encoding": "gzip"} if case.gzip_claim else None,
            timeout=MIN_SERVER_HOLD + POLL_SECONDS + active().request_timeout,
            note=case.label,
        )
        call = fleet.call(transcript, send)
        problem = bad_request_problem(call.status)
        if problem is not None:
            wrong.append(f"{case.label}: HTTP {call.status} ({problem})")
    if wrong:
        raise Violation(
            "FLEET-SRV-BAD-BODY",
            "malformed requests with a good credential were not refused as malformed: "
            + "; ".join(wrong),
            transcript.render(),
        )
    if not key_works:
        not_judged(
            f"the access key from enrolment did not work (an empty ack answered HTTP"
            f" {probe.status}), so malformed check-ins with a good key could not be sent;"
            f" the {len(EDGE_BODIES)} near-valid enrolments were judged and held",
            "fix FLEET-SRV-ENROLL-OK (the key enrolment returns must work) and run again",
        )


@pytest.mark.requirement("FLEET-SRV-ACK")
def test_acks_of_action_results_are_accepted(fleet: Fleet) -> None:
    """An enrolled agent acks two action results: 200, action acks, one item of status 200 each."""
    transcript = FleetTranscript()
    agent_id, key = fleet.enrolled(transcript)
    events = _ack_events(agent_id)
    call = fleet.call(
        transcript,
        lambda: fleet.client.call(
            "POST",
            acks_path(agent_id),
            api_key=key,
            json_body={"events": events},
            agent=fleet.agent,
        ),
    )
    problem = ack_problem(call, len(events))
    if problem is not None:
        raise Violation("FLEET-SRV-ACK", problem, transcript.render())


@pytest.mark.requirement("FLEET-SRV-CHECKIN-401", "FLEET-SRV-ERROR-SHAPE")
def test_checkin_with_a_wrong_key_is_refused(fleet: Fleet) -> None:
    """A wrong access key gets 401; a key used for another agent id gets 401, 403 or 404.

    The second case needs an enrolled agent: without ``--enrollment-token`` (or
    when enrolment fails) it leaves the rule *not judged*, unless the first
    case broke it.
    """
    transcript = FleetTranscript()
    findings = Findings()
    dropped = Dropped("FLEET-SRV-CHECKIN-401")
    judged = 1
    unknown = fleet.checkin(transcript, str(uuid.uuid4()), _well_formed_unknown())
    findings.check(
        "FLEET-SRV-CHECKIN-401",
        unknown.status == 401,
        f"check-in with an unknown access key: HTTP {unknown.status}, expected 401",
        transcript.render(),
    )
    other_case = "a check-in naming an agent id its access key does not belong to is refused"
    try:
        _, key = fleet.enrolled(transcript)
        # An id no agent has, and another agent that exists (the key belongs to neither).
        other_id, _ = fleet.enrolled(transcript)
        named = [("an unknown agent id", str(uuid.uuid4())), ("another enrolled agent", other_id)]
        answers = [(what, fleet.checkin(transcript, agent_id, key)) for what, agent_id in named]
    except NotJudged as exc:
        dropped.add(other_case, exc.reason, exc.remedy)
    else:
        judged += 1
        for what, other in answers:
            findings.check(
                "FLEET-SRV-CHECKIN-401",
                other.status in (401, 403, 404),
                f"check-in with an enrolled agent's key naming {what}: HTTP {other.status},"
                " expected 401, 403 or 404",
                transcript.render(),
            )
    _check_error_shapes(findings, transcript)
    dropped.settle(findings, judged=judged)


@pytest.mark.requirement("FLEET-SRV-CHECKIN-POLL")
def test_long_poll_is_bounded_and_keeps_the_ack_token(fleet: Fleet) -> None:
    """With poll_timeout, the check-in returns in time; nothing happened, so the ack_token stays."""
    transcript = FleetTranscript()
    agent_id, key = fleet.enrolled(transcript)
    bound = max(POLL_SECONDS, MIN_SERVER_HOLD) + active().request_timeout
    findings = Findings()
    tokens: list[object] = []
    for ack_token in (None, "<from the first>"):
        sent = None if ack_token is None else (tokens[0] if isinstance(tokens[0], str) else None)
        call = fleet.checkin(transcript, agent_id, key, ack_token=sent)
        if call.status != 200:
            not_judged(
                f"the enrolled agent's check-in was refused (HTTP {call.status}), so the long"
                " poll could not be observed (FLEET-SRV-ENROLL-OK judges that check-in)",
                "check that agents enrolled with --enrollment-token may check in, and run again",
            )
        elapsed = call.exchange.elapsed
        findings.check(
            "FLEET-SRV-CHECKIN-POLL",
            elapsed <= bound,
            f"poll_timeout {POLL_SECONDS:g}s, answered after {elapsed:.1f} s"
            f" (allowed {bound:.0f} s)",
            transcript.render(),
        )
        tokens.append(call.json.get("ack_token") if isinstance(call.json, dict) else None)
    findings.check(
        "FLEET-SRV-CHECKIN-POLL",
        tokens[0] == tokens[1],
        f"ack_token changed from {tokens[0]!r} to {tokens[1]!r} although nothing happened",
        transcript.render(),
    )
    findings.items = first_per_rule(findings.items)
    findings.raise_if_any()


#: The burst for FLEET-SRV-RATE: enrolments with an unknown key from this many
#: clients at once, until enough 429s came back or the caps are reached. Sent
#: concurrently: a sequential burst is refilled as fast as it drains (fleet-server
#: gives one enrolment every 10 ms) when the network or the machine is slow.
RATE_CLIENTS = 8
RATE_MAX_REQUESTS = 400
RATE_MAX_SECONDS = 10.0
RATE_ENOUGH = 5


#: Statuses an enrolment with a well-formed unknown key may get in a burst: 401 for the
#: key, 429 for the rate limit (5xx are FLEET-SRV-NO-5XX's, and no answer is not judged).
BURST_STATUSES = frozenset({401, 429})


@dataclass
class Burst:
    """What a burst of enrolments with one unknown key got back."""

    key: str
    sent: int = 0
    limited: list[FleetCall] = field(default_factory=list)
    #: Answers that are neither allowed in a burst nor a 5xx (at most RATE_ENOUGH kept).
    odd: list[FleetCall] = field(default_factory=list)
    answers: collections.Counter[str] = field(default_factory=collections.Counter)

    def counts(self) -> str:
        return ", ".join(f"{n}x {k}" for k, n in self.answers.most_common())


def _odd_in_burst(status: int | None) -> bool:
    """Whether a burst answer below 500 is neither 401 nor 429."""
    return status is not None and status < 500 and status not in BURST_STATUSES


def _burst(fleet: Fleet) -> Burst:
    """Enrolments with a well-formed unknown key from RATE_CLIENTS clients at once, until
    RATE_ENOUGH 429s came back or RATE_MAX_REQUESTS / RATE_MAX_SECONDS are reached."""
    burst = Burst(_well_formed_unknown())
    lock = threading.Lock()
    deadline = time.monotonic() + RATE_MAX_SECONDS

    def client_burst() -> None:
        client = FleetClient(fleet.client.base_url, timeout=fleet.client.timeout)
        try:
            while time.monotonic() < deadline:
                with lock:
                    if burst.sent >= RATE_MAX_REQUESTS or len(burst.limited) >= RATE_ENOUGH:
                        return
                    burst.sent += 1
                call = client.call(
                    "POST",
                    ENROLL_PATH,
                    api_key=burst.key,
                    json_body=enrol_body(),
                    agent=fleet.agent,
                    note="burst",
                )
                status = call.status
                with lock:
                    burst.answers[f"HTTP {status}" if status else "no answer"] += 1
                    if status == 429:
                        burst.limited.append(call)
                    elif _odd_in_burst(status) and len(burst.odd) < RATE_ENOUGH:
                        burst.odd.append(call)
        finally:
            client.close()

    with ThreadPoolExecutor(RATE_CLIENTS) as pool:
        for future in [pool.submit(client_burst) for _ in range(RATE_CLIENTS)]:
            future.result()
    if not burst.limited and set(burst.answers) <= {"no answer"}:
        not_judged(
            f"none of {burst.sent} enrolments of the burst was answered, so no rate limit could"
            " be observed",
            "check that the target's Fleet API answers within --request-timeout (or raise it),"
            " and run again",
        )
    return burst


def _no_429(burst: Burst) -> NoReturn:
    not_applicable(
        "the target did not rate-limit a burst of enrolments: it gave no HTTP 429",
        f"{burst.sent} enrolments with an unknown key from {RATE_CLIENTS} clients at once,"
        f" within {RATE_MAX_SECONDS:g} s, got no HTTP 429: {burst.counts()}",
    )


@pytest.mark.requirement("FLEET-SRV-RATE", "FLEET-SRV-ENROLL-401")
def test_rate_limit_answers_say_when_to_retry(fleet: Fleet) -> None:
    """A concurrent burst of enrolments with an unknown key: every 429 that comes back
    carries Retry-After, and every other answer below 500 is 401 (the key is unknown).

    FLEET-SRV-ENROLL-401 is judged here under load: a rate-limit refusal with
    another 4xx (or an unknown key let in) shows up only in a burst.
    """
    burst = _burst(fleet)
    findings = Findings()
    if burst.odd:
        findings.add(
            "FLEET-SRV-ENROLL-401",
            f"{burst.sent} enrolments with a well-formed unknown key at once got {burst.counts()};"
            " expected 401 for the key or 429 for the rate limit",
            FleetTranscript(burst.odd).render(),
        )
    if not burst.limited:
        if findings.items:  # the rate rule itself saw no 429: not judged, not a pass
            raise Violations(findings.items)
        _no_429(burst)
    bare = [c for c in burst.limited if c.exchange.header("Retry-After") is None]
    findings.check(
        "FLEET-SRV-RATE",
        not bare,
        f"{len(bare)} of {len(burst.limited)} answers HTTP 429 without Retry-After",
        FleetTranscript(burst.limited[:RATE_ENOUGH]).render(),
    )
    findings.raise_if_any()


#: FLEET-SRV-RATE-RECOVER: the longest Retry-After the suite honours, in seconds.
RECOVER_WAIT_CAP = 15.0
#: Probes after a burst, at least this many and over at least this long (so that a
#: burst of the rate test on another worker is over), each after the wait asked for.
RECOVER_TRIES = 4
RECOVER_SPAN = RATE_MAX_SECONDS + 3.0


def _delta_seconds(call: FleetCall) -> float | None:
    """Retry-After as delta-seconds (RFC 9110 section 10.2.3), or None (absent, a date)."""
    value = (call.exchange.header("Retry-After") or "").strip()
    return float(value) if value.isdigit() else None


@pytest.mark.requirement("FLEET-SRV-RATE-RECOVER")
def test_rate_limited_client_gets_through_after_waiting(fleet: Fleet) -> None:
    """After a burst was rate-limited, a client that waits as long as Retry-After says
    (and sends nothing else) gets an answer other than 429 within a few tries.

    Judged only when the 429s say how long to wait in seconds: without that
    (fleet-server sends no Retry-After) there is no promise to hold the target to.
    """
    burst = _burst(fleet)
    if not burst.limited:
        _no_429(burst)
    last = burst.limited[-1]
    wait = _delta_seconds(last)
    if wait is None:
        not_applicable(
            "the 429s of the burst did not say in seconds when to come back (Retry-After),"
            " so there is no wait to honour",
            FleetTranscript(burst.limited[:RATE_ENOUGH]).render(),
        )
    transcript = FleetTranscript([last])
    start = time.monotonic()
    tries = 0
    while True:
        if wait > RECOVER_WAIT_CAP:
            not_judged(
                f"the target asked to wait {wait:g} s after a 429, longer than the suite waits"
                f" ({RECOVER_WAIT_CAP:g} s)",
                "lower the target's rate-limit Retry-After (or its refill interval), and run again",
            )
        time.sleep(wait)
        call = transcript.add(
            fleet.client.call(
                "POST",
                ENROLL_PATH,
                api_key=burst.key,
                json_body=enrol_body(),
                agent=fleet.agent,
                note=f"after waiting {wait:g} s",
            )
        )
        tries += 1
        if call.status is not None and call.status != 429:
            return
        wait = _delta_seconds(call) or 1.0
        if tries >= RECOVER_TRIES and time.monotonic() - start >= RECOVER_SPAN:
            break
    if any(c.status is None for c in transcript.calls):
        not_judged(
            f"after the burst, {tries} enrolments that waited as asked got 429 or no answer",
            "check that the target's Fleet API answers within --request-timeout (or raise it),"
            " and run again",
        )
    raise Violation(
        "FLEET-SRV-RATE-RECOVER",
        f"{tries} enrolments over {time.monotonic() - start:.0f} s, each sent after waiting as"
        " long as the 429 before it said (Retry-After), were all answered 429 again",
        transcript.render(),
    )


#: FLEET-SRV-413: an enrolment body this large is over any default fleet-server limit.
OVERSIZED_BODY = 4 * 1024 * 1024


@pytest.mark.requirement("FLEET-SRV-413")
def test_oversized_enrolment_gets_413(fleet: Fleet) -> None:
    """An enrolment with the real token and a 4 MiB (valid JSON) body: refused with 413,
    or served (the target's limit is higher: not applicable)."""
    if fleet.token is None:
        not_judged(
            "an oversized body reaches the body limit only behind authentication, and no"
            " --enrollment-token was given",
            TOKEN_REMEDY,
        )
    body = enrol_body()
    body["metadata"]["local"]["padding"] = "x" * OVERSIZED_BODY
    raw = json.dumps(body).encode()
    transcript = FleetTranscript()
    # Uploading the body takes longer than a normal exchange: allow a minute at least.
    timeout = max(active().request_timeout, 60.0)
    call = fleet.call(
        transcript,
        lambda: fleet.client.call(
            "POST",
            ENROLL_PATH,
            api_key=fleet.token,
            raw_body=raw,
            agent=fleet.agent,
            timeout=timeout,
            note=f"a {len(raw)} B enrolment",
        ),
    )
    if call.status is not None and 200 <= call.status < 300:
        not_applicable(
            f"the target took a {len(raw)} B enrolment: its body limit is higher, or it has none",
            transcript.render(),
        )
    got = f"HTTP {call.status}" if call.status is not None else "no HTTP status"
    if call.exchange.problem is not None:
        got += f" ({call.exchange.problem.value})"
    require(
        "FLEET-SRV-413",
        call.status == 413,
        f"a {len(raw)} B enrolment with the real token got {got}, expected 413 (or 200)",
        transcript.render(),
    )


def _send_odd(fleet: Fleet, request: OddRequest) -> FleetCall:
    authorization = request.authorization
    if authorization == REAL_TOKEN:
        authorization = f"ApiKey {fleet.token}" if fleet.token else None
    return fleet.client.call(
        request.method,
        request.path,
        authorization=authorization,
        raw_body=request.body,
        content_type=request.content_type,
        agent=request.agent,
        gzip=request.gzip,
        note=request.note,
    )


@pytest.mark.requirement("FLEET-SRV-NO-5XX", "FLEET-SRV-ERROR-SHAPE")
def test_odd_requests_get_no_5xx(fleet: Fleet) -> None:
    """No generated or near-valid request gets a 5xx (but 503 with a reason), a hang or a reset.

    The near-valid enrolments carry the enrollment token, and so do the
    generated requests that ask for it: without ``--enrollment-token`` those
    reach no handler behind authentication, and the rule is left *not judged*
    (unless a request broke it).
    """
    dropped = Dropped("FLEET-SRV-NO-5XX")
    if fleet.token is None:
        dropped.add(
            "near-valid enrolments and generated requests that carry a real enrollment token"
            " (they reach the handlers behind authentication)",
            "no --enrollment-token was given",
            TOKEN_REMEDY,
        )
    judged = 0
    shapes = ShouldTally(
        "FLEET-SRV-ERROR-SHAPE", "error responses not shaped {statusCode, error, message}"
    )
    # Credentials a decoder may trip over reach only the authentication step: no token needed.
    edges = [
        OddRequest("POST", path, NOT_UTF8_KEY, fleet.agent, "application/json", VALID_ENROL, note=n)
        for path, n in (
            (ENROLL_PATH, "enrolment, ApiKey of bytes that are not UTF-8"),
            (checkin_path(str(uuid.uuid4())), "check-in, ApiKey of bytes that are not UTF-8"),
        )
    ]
    if fleet.token is not None:
        edges += [
            OddRequest(
                "POST", ENROLL_PATH, REAL_TOKEN, fleet.agent, "application/json", body, note=label
            )
            for label, body in EDGE_BODIES
        ]

    def judge(request: OddRequest) -> None:
        nonlocal judged
        judged += 1
        transcript = FleetTranscript()
        # A 429 (say, after the rate-limit test) says nothing about the request: wait, resend.
        call = fleet.call(transcript, lambda: _send_odd(fleet, request))
        problem = broken(call)
        if problem is not None:
            raise Violation("FLEET-SRV-NO-5XX", f"{request!r}: {problem}", transcript.render())
        if call.status is not None and call.status >= 400 and call.status != 429:
            shapes.count(error_shape_problem(call), transcript.render())

    for edge in edges:
        judge(edge)

    @conformance_property(time_budget=active().test_budget, request=odd_requests())
    def odd(request: OddRequest) -> None:
        judge(request)

    odd()
    dropped.settle(Findings(shapes.violations()), judged=judged)
