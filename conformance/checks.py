"""Helpers tests use to judge exchanges and keep the transcript that becomes evidence."""

from __future__ import annotations

from dataclasses import dataclass, field

from conformance.drivers.exchange import Exchange
from conformance.verdicts import Violation
from conformance.wire import ServerToAgent, has_field

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
