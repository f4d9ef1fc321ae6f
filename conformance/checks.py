"""Helpers tests use to judge exchanges and keep the transcript that becomes evidence."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from conformance.drivers.exchange import Exchange
from conformance.verdicts import Violation
from conformance.wire import ErrorType, ServerToAgent, has_field

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


def expect_reply(transcript: Transcript, exchange: Exchange) -> ServerToAgent:
    """The ServerToAgent of ``exchange``; a violation of SRV-REPLY when there is none."""
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

    A target still throttling after :data:`THROTTLE_RETRIES` resends skips the
    test with the reason: the rules cannot be judged under that load.
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
    pytest.skip(
        f"the target throttled {THROTTLE_RETRIES + 1} attempts in a row (HTTP 429/503 or"
        " UNAVAILABLE): lower the load (fewer -n workers, a smaller --profile) or raise its"
        " rate limit"
    )


def converse(
    transcript: Transcript, send: Callable[[], Exchange], reset: Callable[[], None]
) -> ServerToAgent:
    """One exchange judged for SRV-REPLY, after honouring any throttling."""
    return expect_reply(transcript, retry_throttled(transcript, send, reset))


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
