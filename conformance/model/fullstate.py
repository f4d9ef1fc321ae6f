"""Full status and the ReportFullState oracle (rules section 2 and 3).

``is_full_status`` decides whether an AgentToServer carries the agent's full
status for the capabilities it declares in that very message.
``expected_report_full_state`` says, from the server-side history of an agent
and the message just received, whether the reply's ReportFullState bit MUST
be set, SHOULD NOT be set, or MAY be either.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from conformance.wire import AgentCap, AgentToServer, has_field

#: Sub-messages required for full status, keyed by the capability that
#: makes them required (``0`` means always required).
_REQUIRED_FIELDS: tuple[tuple[int, str], ...] = (
    (0, "agent_description"),
    (AgentCap.REPORTS_HEALTH, "health"),
    (AgentCap.REPORTS_EFFECTIVE_CONFIG, "effective_config"),
    (AgentCap.REPORTS_REMOTE_CONFIG, "remote_config_status"),
    (AgentCap.REPORTS_PACKAGE_STATUSES, "package_statuses"),
    (AgentCap.REPORTS_AVAILABLE_COMPONENTS, "available_components"),
    (AgentCap.REPORTS_CONNECTION_SETTINGS_STATUS, "connection_settings_status"),
)

#: Every status sub-message that can make a message "full".
STATUS_FIELDS: tuple[str, ...] = tuple(name for _, name in _REQUIRED_FIELDS)


def required_status_fields(capabilities: int) -> list[str]:
    """The sub-messages full status needs for these capabilities."""
    return [name for cap, name in _REQUIRED_FIELDS if cap == 0 or capabilities & cap]


def present_status_fields(msg: AgentToServer) -> list[str]:
    """The status sub-messages present in ``msg``."""
    return [name for name in STATUS_FIELDS if has_field(msg, name)]


def missing_status_fields(msg: AgentToServer) -> list[str]:
    """What ``msg`` lacks for full status; ``capabilities`` when it has no ReportsStatus."""
    missing: list[str] = []
    if not msg.capabilities & AgentCap.REPORTS_STATUS:
        missing.append("capabilities(ReportsStatus)")
    missing.extend(n for n in required_status_fields(msg.capabilities) if not has_field(msg, n))
    return missing


def is_full_status(msg: AgentToServer) -> bool:
    """True when ``msg`` carries full status for its own declared capabilities."""
    return not missing_status_fields(msg)


class FlagExpectation(enum.Enum):
    """What the oracle demands of the ReportFullState bit in one reply."""

    MUST_SET = "must be set"
    SHOULD_NOT_SET = "should not be set"
    MAY = "may be set or not"

    def allows(self, flag_set: bool) -> bool:
        """Whether an observed bit value is acceptable at MUST level."""
        return flag_set or self is not FlagExpectation.MUST_SET

    def preferred(self, flag_set: bool) -> bool:
        """Whether an observed bit value meets the SHOULD level too."""
        if self is FlagExpectation.MUST_SET:
            return flag_set
        if self is FlagExpectation.SHOULD_NOT_SET:
            return not flag_set
        return True


@dataclass(frozen=True)
class AgentHistory:
    """What a server knows about one agent after its previous messages.

    ``awaiting_full`` is true after the server asked for full status and the
    agent has not delivered it yet: a server may keep asking then.
    """

    known: bool = False
    last_seq: int = 0
    said_goodbye: bool = False
    awaiting_full: bool = False


UNKNOWN = AgentHistory()


@dataclass(frozen=True)
class Judgement:
    """The oracle's answer for one reply: expectation, the rule behind it, and why."""

    expectation: FlagExpectation
    rule: str | None
    reason: str


def expected_report_full_state(history: AgentHistory, msg: AgentToServer) -> Judgement:
    """Judge the ReportFullState bit of the reply to ``msg`` (rules section 3)."""
    seq = msg.sequence_num
    if msg.HasField("agent_disconnect"):
        return Judgement(FlagExpectation.MAY, None, "reply to a goodbye (agent_disconnect)")
    if is_full_status(msg):
        return Judgement(
            FlagExpectation.SHOULD_NOT_SET, "SRV-FS-QUIET-FULL", "the message carries full status"
        )
    if not history.known:
        return Judgement(
            FlagExpectation.MUST_SET, "SRV-FS-NEW", "agent unknown to the server, status partial"
        )
    contiguous = seq == history.last_seq + 1
    if history.said_goodbye and seq == 0:
        return Judgement(
            FlagExpectation.MUST_SET,
            "SRV-FS-RECONNECT",
            "agent reconnected after agent_disconnect with sequence_num 0, status partial",
        )
    if not contiguous:
        return Judgement(
            FlagExpectation.MUST_SET,
            "SRV-FS-GAP",
            f"sequence_num {seq} after {history.last_seq} (expected {history.last_seq + 1}),"
            " status partial",
        )
    if history.said_goodbye:
        return Judgement(
            FlagExpectation.MAY, None, "contiguous message after agent_disconnect, status partial"
        )
    if history.awaiting_full:
        return Judgement(
            FlagExpectation.MAY, None, "full status was asked for and not yet delivered"
        )
    return Judgement(
        FlagExpectation.SHOULD_NOT_SET, "SRV-FS-QUIET", "contiguous sequence_num, no drift"
    )


def next_history(history: AgentHistory, msg: AgentToServer, flag_sent: bool) -> AgentHistory:
    """The server-side history after ``msg`` was answered with the bit ``flag_sent``."""
    awaiting = (flag_sent or history.awaiting_full) and not is_full_status(msg)
    return replace(
        history,
        known=True,
        last_seq=msg.sequence_num,
        said_goodbye=msg.HasField("agent_disconnect"),
        awaiting_full=awaiting,
    )
