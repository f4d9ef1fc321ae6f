"""Helpers tests use to judge exchanges and keep the transcript that becomes evidence."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from conformance.drivers.exchange import Exchange
from conformance.outcomes import not_judged
from conformance.verdicts import Violation
from conformance.wire import AgentCap, AgentToServer, ErrorType, ServerToAgent, has_field

#: ServerToAgent fields that must stay unset beside an error_response (numbers 3..11).
NON_ERROR_FIELDS = (
    "remote_config",
    "connection_settings",
    "packages_available",
    "flags",
    "capabilities",
    "agent_identification",
    "command",
    "custom_capabilities",
    "custom_message",
)


def fields_set_beside_error(reply: ServerToAgent) -> list[str]:
    """Fields 3..11 that are set in ``reply`` (scalars count when non-zero)."""
    found: list[str] = []
    for name in NON_ERROR_FIELDS:
        if name in ("flags", "capabilities"):
            if getattr(reply, name):
                found.append(name)
        elif has_field(reply, name):
            found.append(name)
    return found


@dataclass
class Transcript:
    """The exchanges of one test case, printed one line each as evidence."""

    exchanges: list[Exchange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, exchange: Exchange) -> Exchange:
        self.exchanges.append(exchange)
        return exchange

    def note(self, text: str) -> None:
        self.notes.append(text)

    def render(self, last: int = 40) -> str:
        lines = [f"#{i + 1:<3} {e.summary()}" for i, e in enumerate(self.exchanges)]
        if len(lines) > last:
            lines = [f"... {len(lines) - last} earlier exchanges omitted", *lines[-last:]]
        return "\n".join(lines + self.notes)


#: Names of the ServerErrorResponseType values, for messages.
ERROR_TYPE_NAMES = {
    ErrorType.UNKNOWN: "UNKNOWN",
    ErrorType.BAD_REQUEST: "BAD_REQUEST",
    ErrorType.UNAVAILABLE: "UNAVAILABLE",
}


def error_type_name(kind: int) -> str:
    return ERROR_TYPE_NAMES.get(kind, str(kind))


def well_formed(msg: AgentToServer | None) -> bool:
    """Whether ``msg`` is a well-formed AgentToServer: nothing in it a server may call malformed.

    A 16-byte instance_uid, and capabilities with ReportsStatus and defined bits
    only (both required of every agent). Every message the suite judges replies
    to is built that way; hostile and probing messages are not.
    """
    return (
        msg is not None
        and len(msg.instance_uid) == 16
        and bool(msg.capabilities & AgentCap.REPORTS_STATUS)
        and not msg.capabilities & ~AgentCap.ALL
    )


def refused_as_malformed(exchange: Exchange) -> str | None:
    """Why ``exchange`` breaks SRV-REPLY by calling a well-formed message malformed, or ``None``.

    BAD_REQUEST means "the AgentToServer message was malformed" (the spec's
    ServerErrorResponseType; agents must not send it again, AGT-BADREQ). Said
    of a well-formed status report, it is a false answer that makes a conforming
    agent drop its status: the message was not answered as the spec requires
    (answered, or refused for a reason that is true: UNKNOWN, UNAVAILABLE).
    """
    reply = exchange.reply
    if reply is None or not reply.HasField("error_response"):
        return None
    if reply.error_response.type != ErrorType.BAD_REQUEST or not well_formed(exchange.sent):
        return None
    text = reply.error_response.error_message
    return (
        "a well-formed AgentToServer (16-byte instance_uid, ReportsStatus, defined"
        " capability bits only) was answered with error_response BAD_REQUEST"
        + (f" ({text!r})" if text else "")
        + ", which says it was malformed; expected a normal reply (or UNKNOWN/UNAVAILABLE"
        " when processing failed)"
    )


def expect_reply(transcript: Transcript, exchange: Exchange) -> ServerToAgent:
    """The ServerToAgent of ``exchange``; a violation of SRV-REPLY when there is none.

    A well-formed message refused as malformed (BAD_REQUEST) breaks SRV-REPLY too.
    """
    transcript.add(exchange)
    if exchange.reply is None:
        why = exchange.problem.value if exchange.problem else "no ServerToAgent in the response"
        if exchange.status is not None and exchange.status not in (101, 200):
            why += f" (HTTP {exchange.status})"
        if exchange.detail:
            why += f": {exchange.detail}"
        raise Violation("SRV-REPLY", why, transcript.render())
    if exchange.status is not None and exchange.status >= 500:
        raise Violation(
            "SRV-REPLY",
            f"HTTP {exchange.status} for a well-formed AgentToServer",
            transcript.render(),
        )
    malformed = refused_as_malformed(exchange)
    if malformed is not None:
        raise Violation("SRV-REPLY", malformed, transcript.render())
    return exchange.reply


#: HTTP statuses that mean "slow down" rather than "wrong" (rules: SRV-THROTTLE).
THROTTLE_STATUSES = frozenset({429, 503})
#: Resends of one message the suite makes for a throttling target before giving up.
THROTTLE_RETRIES = 3
#: Longest wait the suite honours for one throttling answer, in seconds.
THROTTLE_WAIT_CAP = 5.0


def throttle_wait(exchange: Exchange) -> float | None:
    """Seconds to wait when ``exchange`` is a throttling answer, else ``None``.

    HTTP 429/503 (``Retry-After`` in seconds, default 1 s) and an
    ``error_response`` of type UNAVAILABLE (``retry_info``, default 1 s).
    """
    wait: float | None = None
    if exchange.status in THROTTLE_STATUSES:
        wait = 1.0
        header = exchange.header("Retry-After")
        if header is not None:
            try:
                wait = float(header)
            except ValueError:
                wait = 1.0  # an HTTP date: not worth parsing for a capped wait
    reply = exchange.reply
    if reply is not None and reply.error_response.type == ErrorType.UNAVAILABLE:
        nanos = reply.error_response.retry_info.retry_after_nanoseconds
        wait = nanos / 1e9 if nanos else 1.0
    return None if wait is None else min(max(wait, 0.0), THROTTLE_WAIT_CAP)


def retry_throttled(
    transcript: Transcript, send: Callable[[], Exchange], reset: Callable[[], None]
) -> Exchange:
    """Send, honouring throttling answers; the first non-throttling exchange comes back.

    A target still throttling after :data:`THROTTLE_RETRIES` resends ends the
    test as *not judged*: the rules cannot be judged under that load.
    """
    for _ in range(THROTTLE_RETRIES + 1):
        exchange = send()
        wait = throttle_wait(exchange)
        if wait is None:
            return exchange
        transcript.add(exchange)
        transcript.note(f"    throttled: waiting {wait:.1f} s, then the same message again")
        reset()
        time.sleep(wait)
    last = transcript.exchanges[-1]
    answer = f"HTTP {last.status}" if last.status not in (None, 101, 200) else "UNAVAILABLE"
    not_judged(
        f"the target throttled {THROTTLE_RETRIES + 1} attempts of one message in a row (last"
        f" answer: {answer}), so the rule could not be judged under this load",
        "lower the load (fewer -n workers, e.g. -n 1, or a smaller --profile) or raise the"
        " target's rate limit, and run again",
    )


def converse(
    transcript: Transcript, send: Callable[[], Exchange], reset: Callable[[], None]
) -> ServerToAgent:
    """One exchange judged for SRV-REPLY, after honouring any throttling."""
    return expect_reply(transcript, retry_throttled(transcript, send, reset))


@dataclass
class Refusals:
    """The replies a test could judge, and the error_responses that left it nothing to judge.

    A test whose every reply was refused judged nothing: :meth:`require_judged`
    ends it as *not judged*, naming the refusals, instead of letting it pass.
    """

    judged: int = 0
    refused: collections.Counter[str] = field(default_factory=collections.Counter)
    #: The first refusal's error_message, for the reason.
    example: str = ""

    def refuse(self, reply: ServerToAgent) -> None:
        """Count a reply carrying error_response (which leaves the rule unjudged)."""
        self.refused[error_type_name(reply.error_response.type)] += 1
        if not self.example:
            self.example = reply.error_response.error_message

    def judge(self) -> None:
        self.judged += 1

    def count(self, reply: ServerToAgent) -> bool:
        """Count ``reply``; whether it can be judged (it carries no error_response)."""
        if reply.HasField("error_response"):
            self.refuse(reply)
            return False
        self.judge()
        return True

    def describe(self) -> str:
        """The refusals seen, e.g. ``12 error_response (type UNKNOWN: 'busy')``."""
        total = sum(self.refused.values())
        kinds = ", ".join(f"{n}x type {k}" for k, n in self.refused.most_common())
        example = f", error_message {self.example!r}" if self.example else ""
        return f"{total} error_response ({kinds}{example})"

    def require_judged(self, what: str) -> None:
        """End the test as *not judged* unless some reply was judged; ``what`` names the rule."""
        if self.judged:
            return
        if self.refused:
            total = sum(self.refused.values())
            kinds = " or ".join(self.refused)
            example = f" (error_message {self.example!r})" if self.example else ""
            reason = (
                f"every reply was an error_response of type {kinds}{example}: {total} well-formed"
                f" messages refused, none accepted, so {what} could not be judged"
            )
        else:
            reason = f"no reply could be judged for {what}"
        not_judged(reason, REFUSED_REMEDY)


#: What a user can do when the target refused every message of a test.
REFUSED_REMEDY = (
    "find out why the target refuses the suite's well-formed agents (its error_message,"
    ' its logs); if it needs credentials, give them with --target-header "Authorization: ...";'
    " then run again"
)


@dataclass
class ShouldTally:
    """Counts one SHOULD rule over every example of a test and reports it once.

    Hypothesis stops at the first raised failure; a SHOULD rule is better
    told as "N of M": every chance is counted, the shortest evidence kept.
    """

    rule: str
    chances_name: str
    chances: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    evidence: str = ""

    def count(self, reason: str | None, evidence: str) -> None:
        """One chance to break the rule; ``reason`` says how it was broken (``None``: kept)."""
        self.chances += 1
        if reason is None:
            return
        self.reasons[reason] = self.reasons.get(reason, 0) + 1
        if not self.evidence or len(evidence) < len(self.evidence):
            self.evidence = evidence

    def violations(self) -> list[Violation]:
        if not self.reasons:
            return []
        bad = sum(self.reasons.values())
        top = sorted(self.reasons.items(), key=lambda kv: -kv[1])[:3]
        how = "; ".join(f"{n}x {reason}" for reason, n in top)
        return [
            Violation(
                self.rule,
                f"{bad} of {self.chances} {self.chances_name}: {how}",
                "shortest case showing it:\n" + self.evidence,
            )
        ]
