"""Who may talk and how much: authentication (SRV-AUTH-401), size limit (SRV-413), bursts.

SRV-THROTTLE is an INFO rule: the burst test records what the target does
and never fails it.
"""

from __future__ import annotations

import collections
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from conformance.checks import Transcript
from conformance.drivers import Exchange, HttpDriver
from conformance.fleet.client import changed_api_key
from conformance.messages import heartbeat, new_uid
from conformance.outcomes import not_applicable, not_judged
from conformance.plugin.fixtures import Clients
from conformance.plugin.targets import TargetSession
from conformance.profiles import active
from conformance.target import Transport
from conformance.verdicts import Findings
from conformance.wire import AgentToServer, ErrorType

#: What a header name contains, in any letter case, to be taken for a credential:
#: (pattern, the words it matches). Only such headers are removed or corrupted.
#: ``auth`` covers Authorization and Authorisation. A bare ``key`` does not
#: count: it would take headers such as an idempotency or cache key for one.
CREDENTIAL_PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("auth", ("auth",)),
    ("token", ("token",)),
    ("api[-_]?key", ("api-key", "api_key", "apikey")),
    ("secret", ("secret",)),
    ("cookie", ("cookie",)),
    ("password", ("password",)),
)
#: Header names taken for credentials (searched, so the parts may sit anywhere in the name).
CREDENTIAL_NAME = re.compile("|".join(pattern for pattern, _ in CREDENTIAL_PARTS), re.I)


def corrupt(value: str) -> str:
    """The same credential, wrong but still well-formed.

    ``Scheme base64(id:secret)`` (Elastic API keys) gets the secret's last
    character changed and is encoded again; anything else gets a character
    in the middle replaced by another of its kind (letter, digit), so that
    neither base64 padding bits nor a token's structure hide the change.
    """
    scheme, space, token = value.rpartition(" ")
    changed = changed_api_key(token)
    if changed is not None:
        return scheme + space + changed
    if not token:
        return value + "x"
    middle = len(token) // 2
    for offset in range(len(token)):
        i = (middle + offset) % len(token)
        char = token[i]
        if char.isdigit():
            return scheme + space + token[:i] + str((int(char) + 1) % 10) + token[i + 1 :]
        if char.isalpha():
            other = "b" if char.lower() == "a" else "a"
            other = other.upper() if char.isupper() else other
            return scheme + space + token[:i] + other + token[i + 1 :]
    return value + "x"


def _attempt(clients: Clients, transport: Transport, headers: list[tuple[str, str]]) -> Exchange:
    """A request (HTTP) or an upgrade (WebSocket) from a new agent with ``headers``."""
    driver = clients.open(transport, headers)
    try:
        if isinstance(driver, HttpDriver):
            return driver.send(heartbeat(new_uid(), 0))
        return driver.connect()
    finally:
        driver.close()


#: The remedy when no credential was given to remove or corrupt: it names
#: exactly what :data:`CREDENTIAL_NAME` matches.
CREDENTIAL_REMEDY = (
    '--target-header "Authorization: <the credential the target expects>" (any header whose'
    " name contains one of: "
    + ", ".join(word for _, words in CREDENTIAL_PARTS for word in words)
    + "; in any letter case)"
)


def _served(exchange: Exchange) -> bool:
    """The target served the request: a ServerToAgent without error_response came back."""
    reply = exchange.reply
    return (
        reply is not None
        and not reply.HasField("error_response")
        and exchange.status in (101, 200)
        and exchange.problem is None
    )


def _without_credentials(clients: Clients, transport: Transport) -> None:
    """End the test: no credential was given, so only the target's own answer can settle it.

    A new agent sends one message without any header. Served: the target has no
    authentication configured, and the rule does not apply (that answer is the
    evidence). Anything else (401, an error_response, no answer) may be an
    authentication the suite holds no credential for: not judged.
    """
    given = [name for name, _ in clients.headers]
    driver = clients.open(transport, [])
    try:
        exchange = driver.send(heartbeat(new_uid(), 0))
    finally:
        driver.close()
    what = f"a message over {transport.value} from a new agent without any header"
    if _served(exchange):
        not_applicable(
            "the target serves agents that send no credential: no authentication is configured",
            f"{what} was served: {exchange.summary()}",
        )
    names = f" (the headers given, {', '.join(given)}, do not look like credentials)"
    not_judged(
        "no credential was given to remove or corrupt"
        + (names if given else " (no --target-header)")
        + f", and the target did not serve {what}: {exchange.summary()}",
        CREDENTIAL_REMEDY,
    )


@pytest.mark.requirement("SRV-AUTH-401")
def test_missing_or_wrong_credentials_get_401(opamp: Clients, transport: Transport) -> None:
    """Without the credential headers, or with one corrupted, the answer is HTTP 401.

    Without a credential header given, a target that serves an agent sending
    none has no authentication (not applicable); any other answer leaves the
    rule not judged.
    """
    headers = opamp.headers
    credentials = [h for h in headers if CREDENTIAL_NAME.search(h[0])]
    if not credentials:
        _without_credentials(opamp, transport)
    others = [h for h in headers if h not in credentials]
    cases = [("credential headers left out", others)]
    for name, _ in credentials:
        changed = [(n, corrupt(v) if n == name else v) for n, v in headers]
        cases.append((f"{name} with one character changed", changed))
    transcript = Transcript()
    findings = Findings()
    for label, case_headers in cases:
        exchange = transcript.add(_attempt(opamp, transport, case_headers))
        transcript.note(f"    #{len(transcript.exchanges)}: {label}")
        got = f"HTTP {exchange.status}" if exchange.status is not None else "no HTTP status"
        if exchange.problem is not None:
            got += f" ({exchange.problem.value})"
        where = "at the WebSocket upgrade" if transport is Transport.WS else "for the request"
        findings.check(
            "SRV-AUTH-401",
            exchange.status == 401,
            f"{label}: got {got} {where}, expected 401",
            transcript.render(),
        )
    findings.raise_if_any()


#: The custom_message that pads a request to a chosen size.
PADDING_CAPABILITY = "io.fleet-conformance.padding"


def padded_heartbeat(size: int) -> AgentToServer:
    """A valid heartbeat from a new agent whose encoding is exactly ``size`` bytes.

    A custom_message carries the padding. The length prefixes are varints, so
    one data length may step over ``size``; one more byte in the type moves it.
    """
    msg = heartbeat(new_uid(), 0)
    msg.custom_message.capability = PADDING_CAPABILITY
    for extra in range(3):
        msg.custom_message.type = "padding" + "." * extra
        msg.custom_message.data = b""
        for _ in range(4):
            missing = size - msg.ByteSize()
            if missing == 0:
                return msg
            msg.custom_message.data = bytes(max(0, len(msg.custom_message.data) + missing))
    raise ValueError(f"no padded heartbeat of exactly {size} bytes")


def _got(exchange: Exchange) -> str:
    got = f"HTTP {exchange.status}" if exchange.status is not None else "no HTTP status"
    if exchange.problem is not None:
        got += f" ({exchange.problem.value}: {exchange.detail})"
    return got


@pytest.mark.requirement("SRV-413")
def test_request_over_the_size_limit_gets_413(
    opamp: Clients, conformance_session: TargetSession
) -> None:
    """A valid message one kibibyte over the target's limit is refused with HTTP 413.

    Spec l.570-573: the limit holds for request bodies of any form ("MUST
    enforce a size limit when receiving HTTP request bodies") and 413 is the
    answer when it "is exceeded". So the same oversized body is sent twice,
    with a Content-Length and chunked (a server that checks only the header
    lets the second one in), and, when the limit is known, a body of exactly
    the limit must not get 413: it does not exceed the limit.
    """
    conformance_session.require_transport(conformance_session.primary, Transport.HTTP)
    limit = conformance_session.max_message_bytes
    if not conformance_session.size_limit_known and active().name != "nightly":
        not_judged(
            f"the target's size limit is not known, and sending a body over the spec's default"
            f" limit ({limit} B) is left to the nightly profile",
            "--max-message-bytes=N (the target's own limit, in bytes), or --profile=nightly",
        )
    msg = heartbeat(new_uid(), 0)
    msg.custom_message.capability = PADDING_CAPABILITY
    msg.custom_message.type = "padding"
    msg.custom_message.data = bytes(limit + 1024)
    transcript = Transcript()
    # Uploading the body takes longer than a normal exchange: allow a minute at least.
    timeout = max(active().request_timeout, 60.0)
    exchange = transcript.add(opamp.http().send(msg, timeout=timeout))
    transcript.note("    #1: a body over the limit, with a Content-Length")
    if exchange.status == 200 and not conformance_session.size_limit_known:
        not_judged(
            f"the target accepted a {exchange.sent_bytes} B request: its limit is above the"
            " spec's recommended 64 MiB, or it has none",
            "--max-message-bytes=N (the target's own limit, in bytes)",
        )
    findings = Findings()
    findings.check(
        "SRV-413",
        exchange.status == 413,
        f"a {exchange.sent_bytes} B request (limit {limit} B) got {_got(exchange)}, expected 413",
        transcript.render(),
    )
    chunked = transcript.add(opamp.http().send(msg, chunked=True, timeout=timeout))
    transcript.note("    #2: the same body chunked, without a Content-Length")
    # 411 refuses every chunked body, oversized or not: SRV-GZIP judges that.
    findings.check(
        "SRV-413",
        chunked.status in (411, 413),
        f"a {chunked.sent_bytes} B request sent chunked, without a Content-Length (limit"
        f" {limit} B), got {_got(chunked)}, expected 413",
        transcript.render(),
    )
    if conformance_session.size_limit_known:
        exact = transcript.add(opamp.http().send(padded_heartbeat(limit), timeout=timeout))
        transcript.note("    #3: a body of exactly the limit, with a Content-Length")
        findings.check(
            "SRV-413",
            exact.status != 413,
            f"a request of exactly the limit ({exact.sent_bytes} B, limit {limit} B) got 413;"
            " only a request over the limit may get it",
            transcript.render(),
        )
    findings.raise_if_any()


#: The burst: this many agents at once, each sending this many messages back to back.
BURST_AGENTS = 4
BURST_MESSAGES = 10


def _burst_agent(clients: Clients, transport: Transport) -> list[Exchange]:
    """One agent's share of the burst; it stops at its first transport problem."""
    driver = clients.open(transport)
    uid, seen = new_uid(), []
    try:
        for seq in range(BURST_MESSAGES):
            exchange = driver.send(heartbeat(uid, seq))
            seen.append(exchange)
            if exchange.problem is not None:
                break
    finally:
        driver.close()
    return seen


def describe_burst(exchanges: list[Exchange], seconds: float) -> str:
    """What a burst got back: statuses, throttling answers and whether they said when."""
    outcomes: collections.Counter[str] = collections.Counter()
    throttled = with_hint = 0
    for ex in exchanges:
        reply = ex.reply
        if ex.status in (429, 503):
            throttled += 1
            with_hint += ex.header("Retry-After") is not None
        elif reply is not None and reply.error_response.type == ErrorType.UNAVAILABLE:
            throttled += 1
            with_hint += reply.error_response.HasField("retry_info")
        key = f"HTTP {ex.status}" if ex.status not in (None, 101) else "WebSocket message"
        outcomes[key + (f" ({ex.problem.value})" if ex.problem else "")] += 1
    counts = ", ".join(f"{n}x {k}" for k, n in outcomes.most_common())
    text = f"burst of {len(exchanges)} messages from {BURST_AGENTS} agents in {seconds:.2f} s: "
    text += counts
    if throttled:
        return text + f"; {throttled} throttling answers, {with_hint} saying when to retry"
    return text + "; no throttling seen"


@pytest.mark.requirement("SRV-THROTTLE")
def test_burst_behaviour_is_recorded(
    opamp: Clients, transport: Transport, observe: Callable[[str], None]
) -> None:
    """A short, bounded burst of concurrent agents; the answers are recorded, never judged."""
    started = time.monotonic()
    with ThreadPoolExecutor(BURST_AGENTS) as pool:
        shares = list(pool.map(lambda _: _burst_agent(opamp, transport), range(BURST_AGENTS)))
    exchanges = [ex for share in shares for ex in share]
    observe(describe_burst(exchanges, time.monotonic() - started))
