"""What a conforming OpAMP agent sends, judged from what the suite's mock server received.

Pure functions over the mock's records (rules section 5). Each check
returns the first problem it finds as text, or None; the tests turn a
problem into a violation of the matching requirement. The records
themselves (:class:`Reply`, :class:`Received`, :class:`Connect`) live here
too, so the judgements never depend on the server's I/O.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from conformance.model.fullstate import (
    missing_status_fields,
    present_status_fields,
)
from conformance.wire import CONTENT_TYPE, UID_HEADER, AgentCap, AgentToServer, ServerToAgent

#: Reply kinds. Protocol replies: "ack" (nothing asked or offered), "full"
#: (ReportFullState), "new-uid" (agent_identification.new_instance_uid),
#: "heartbeat" (offers heartbeat_interval_seconds = ``seconds``),
#: "bad-request" and "unavailable" (error_response; the latter with
#: retry_info when ``seconds`` is set). Transport faults: "429", "503"
#: (Retry-After when ``seconds`` is set; over WebSocket: UNAVAILABLE and
#: close), "500" (over WebSocket: close with 1011), "empty" (empty body),
#: "garbage" (bytes that are no ServerToAgent), "wrong-ct" (a valid reply
#: labelled text/plain), "no-uid" (a reply without instance_uid). A "429" or "503"
#: writes its Retry-After as :data:`HINTS` say.
KINDS = (
    "ack",
    "full",
    "new-uid",
    "heartbeat",
    "bad-request",
    "unavailable",
    "429",
    "503",
    "500",
    "empty",
    "garbage",
    "wrong-ct",
    "no-uid",
)


#: How a plain-HTTP "429" or "503" (or a refused WebSocket upgrade) writes Retry-After
#: (RFC 9110, 10.2.3): "seconds" (delta-seconds, when ``seconds`` is set), "date" (an
#: HTTP date ``seconds`` ahead, rounded up to the next whole second), "junk" (a value
#: that is neither: no hint at all).
HINTS = ("seconds", "date", "junk")


@dataclass(frozen=True)
class Reply:
    kind: str = "ack"
    #: Retry-After / retry_info seconds, or the offered heartbeat interval.
    seconds: int | None = None
    #: How Retry-After is written (see :data:`HINTS`).
    hint: str = "seconds"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown reply {self.kind!r}")
        if self.hint not in HINTS:
            raise ValueError(f"unknown Retry-After form {self.hint!r}")

    def __str__(self) -> str:
        if self.hint == "junk":
            return f"{self.kind}(Retry-After unreadable)"
        if self.seconds is None:
            return self.kind
        if self.hint == "date":
            return f"{self.kind}(Retry-After date, {self.seconds} s)"
        return f"{self.kind}({self.seconds} s)"


ACK = Reply()


@dataclass(frozen=True)
class Received:
    """One message from the agent, as the mock saw it."""

    at: float
    transport: str
    #: WebSocket connection number (from 1); 0 for plain HTTP.
    connection: int
    headers: tuple[tuple[str, str], ...]
    message: AgentToServer | None
    #: Why the body was not an AgentToServer ("" when it was).
    problem: str
    reply: Reply
    #: HTTP requests in flight when this one arrived, itself included.
    in_flight: int = 1
    #: The bytes as received (after gzip), to spot a resend of the very same message.
    raw: bytes = b""
    #: The ServerToAgent sent back (None for transport faults and undecodable replies).
    sent: ServerToAgent | None = None

    def header(self, name: str) -> str | None:
        lname = name.lower()
        return next((v for k, v in self.headers if k.lower() == lname), None)

    def describe(self) -> str:
        if self.message is None:
            return f"undecodable ({self.problem})"
        msg = self.message
        fields = [f.name for f, _ in msg.ListFields() if f.name not in ("instance_uid",)]
        return f"seq={msg.sequence_num} uid={msg.instance_uid.hex()[:12]} [{', '.join(fields)}]"


@dataclass(frozen=True)
class Connect:
    """One WebSocket upgrade attempt: ``answer`` 101 or the refusing status."""

    at: float
    answer: int


# -- the checks ------------------------------------------------------------------


def decoded(seen: Sequence[Received]) -> list[tuple[Received, AgentToServer]]:
    return [(r, r.message) for r in seen if r.message is not None]


def assigned_uid(item: Received) -> bytes | None:
    """The new instance_uid the reply to ``item`` assigned, if any."""
    sent = item.sent
    if sent is None or not sent.HasField("agent_identification"):
        return None
    return bytes(sent.agent_identification.new_instance_uid) or None


#: Status fields the agent-side oracle does not require for full status: both are
#: [Development] in the spec, and an agent has no status of them to report before the
#: server has offered connection settings or asked for components.
_NOT_REQUIRED_OF_AGENTS = frozenset({"available_components", "connection_settings_status"})
#: Replies after which a resend of the very same request is the spec's own retry.
_THROTTLING = frozenset({"429", "503", "unavailable"})
#: Over WebSocket a message sent up to this long after a reply left may have been on its
#: way before the agent read the reply.
CROSSING = 0.1
#: The first message and those sent within this long after it, up to the first bare one,
#: count together as the first status report (an agent may send its status in a burst).
FIRST_BURST = 1.0


def agent_missing(msg: AgentToServer) -> list[str]:
    """What ``msg`` lacks for full status, as the agent rules judge it."""
    return [f for f in missing_status_fields(msg) if f not in _NOT_REQUIRED_OF_AGENTS]


def _connection_starts(seen: Sequence[Received]) -> set[int]:
    """Indexes of the first message of each WebSocket connection after the first one."""
    starts: set[int] = set()
    for i, (before, after) in enumerate(itertools.pairwise(seen), start=1):
        if after.transport == "ws" and after.connection != before.connection:
            starts.add(i)
    return starts


def check_first_full(seen: Sequence[Received]) -> str | None:
    """AGT-FIRST-FULL: the first status report of the process is full.

    The first message counts together with those that follow it within
    :data:`FIRST_BURST` up to the first bare one (and not past a reply that
    asked for full state). Later WebSocket
    connections are not held to it (the spec lets an agent omit unchanged
    status, and the server repairs gaps with ReportFullState).
    """
    if not seen or seen[0].message is None:
        return None
    first = seen[0].message
    burst = AgentToServer()
    burst.CopyFrom(first)
    for before, item in itertools.pairwise(seen):
        # What a ReportFullState flag brought in is the server's repair, not the report.
        if before.reply.kind == "full" or item.message is None or bare(item):
            break
        if item.at - seen[0].at > FIRST_BURST:
            break
        for name in present_status_fields(item.message):
            getattr(burst, name).CopyFrom(getattr(item.message, name))
    missing = agent_missing(burst)
    if missing and not first.HasField("agent_disconnect"):
        return (
            f"the first status report of the process (seq {first.sequence_num}"
            f" and what followed within {FIRST_BURST:g} s) lacks {', '.join(missing)}"
        )
    return None


def check_sequence(seen: Sequence[Received]) -> str | None:
    """AGT-SEQ: sequence_num grows by exactly 1 per message; the same bytes twice is a resend.

    Allowed: resending the same request after a throttling reply (429, 503,
    UNAVAILABLE: the spec's retry), starting again from 0 after
    agent_disconnect, and anything at the start of a new WebSocket
    connection (frames in flight when the server closed may be lost).
    """
    starts = _connection_starts(seen)
    previous: tuple[Received, AgentToServer] | None = None
    for i, item in enumerate(seen):
        msg = item.message
        if msg is None:
            continue
        if previous is not None and i not in starts:
            before, prev_msg = previous
            expected = prev_msg.sequence_num + 1
            if item.raw and item.raw == before.raw:
                if before.reply.kind not in _THROTTLING:
                    return (
                        f"seq {msg.sequence_num} was sent twice with the same bytes (after the"
                        f" reply {before.reply}); every message sent takes the next number"
                    )
            elif msg.sequence_num != expected and not (
                msg.sequence_num == 0 and prev_msg.HasField("agent_disconnect")
            ):
                return (
                    f"seq {msg.sequence_num} followed seq {prev_msg.sequence_num}"
                    f" (expected {expected})"
                )
        previous = (item, msg)
    return None


def _after_reply(
    pairs: list[tuple[Received, AgentToServer]], n: int
) -> tuple[list[AgentToServer], list[AgentToServer]]:
    """The messages after ``pairs[n]``'s reply: those that may have crossed it (WebSocket,
    within :data:`CROSSING`), and those sent once the agent had it."""
    item = pairs[n][0]
    later = pairs[n + 1 :]
    if item.transport != "ws":
        return [], [m for _, m in later]
    crossing = [m for r, m in later if r.at - item.at <= CROSSING]
    return crossing, [m for r, m in later if r.at - item.at > CROSSING]


def unanswered(seen: Sequence[Received], kinds: frozenset[str]) -> list[str]:
    """Replies of these kinds that no later message followed (their rule was not judged).

    A ReportFullState reply is answered too when a message that crossed it over
    WebSocket already carried full status (a fast agent's answer, see
    :func:`check_full_on_flag`)."""
    pairs = decoded(seen)
    return [
        str(item.reply)
        for n, (item, _) in enumerate(pairs)
        if item.reply.kind in kinds and item.sent is not None and not _followed(pairs, n)
    ]


def _followed(pairs: list[tuple[Received, AgentToServer]], n: int) -> bool:
    crossing, after = _after_reply(pairs, n)
    full = pairs[n][0].reply.kind == "full"
    if full and any(not agent_missing(m) for m in crossing):
        return True
    # A goodbye is no answer to ReportFullState (check_full_on_flag skips it): not judged.
    return bool(after) and not (full and after[0].HasField("agent_disconnect"))


def check_full_on_flag(seen: Sequence[Received]) -> str | None:
    """AGT-FULL-ON-FLAG: after a reply with ReportFullState the next message is full
    (over WebSocket: the first one sent after the reply arrived, or one that crossed it)."""
    pairs = decoded(seen)
    for n, (item, msg) in enumerate(pairs):
        if item.reply.kind != "full" or item.sent is None:
            continue
        crossing, after = _after_reply(pairs, n)
        if any(not agent_missing(m) for m in crossing):
            continue  # full status followed at once (sent as the reply arrived): held
        if not after or after[0].HasField("agent_disconnect"):
            continue
        if agent_missing(after[0]):
            nxt = after[0]
            return (
                f"the reply to seq {msg.sequence_num} set ReportFullState; the next message"
                f" (seq {nxt.sequence_num}) lacks {', '.join(agent_missing(nxt))}"
            )
    return None


def check_uid(seen: Sequence[Received]) -> str | None:
    """AGT-UID: 16 bytes, fixed for the process except where the server assigned a new one."""
    allowed: set[bytes] = set()
    current: bytes | None = None
    for item, msg in decoded(seen):
        uid = bytes(msg.instance_uid)
        if len(uid) != 16:
            return f"instance_uid of seq {msg.sequence_num} is {len(uid)} bytes ({uid.hex()})"
        if current is not None and uid != current and uid not in allowed:
            return (
                f"instance_uid changed from {current.hex()} to {uid.hex()} at seq"
                f" {msg.sequence_num} without the server assigning it"
            )
        current = uid
        new = assigned_uid(item)
        if new is not None:
            allowed.add(new)
    return None


def check_new_uid(seen: Sequence[Received]) -> str | None:
    """AGT-NEW-UID: once a new uid reached the agent, every later message carries it
    (over WebSocket, messages that may have crossed the reply are not judged)."""
    pairs = decoded(seen)
    for n, (item, msg) in enumerate(pairs):
        new = assigned_uid(item)
        if new is None:
            continue
        for later_item, later in pairs[n + 1 :]:
            if item.transport == "ws" and later_item.at - item.at <= CROSSING:
                continue
            if bytes(later.instance_uid) != new:
                return (
                    f"the reply to seq {msg.sequence_num} assigned instance_uid {new.hex()};"
                    f" seq {later.sequence_num} still carries {bytes(later.instance_uid).hex()}"
                )
            if assigned_uid(later_item) is not None:
                break  # a newer assignment: judged on its own
    return None


def check_capabilities(seen: Sequence[Received]) -> str | None:
    """AGT-CAPS: every message declares ReportsStatus and no undefined bit."""
    for _, msg in decoded(seen):
        caps = msg.capabilities
        if not caps & AgentCap.REPORTS_STATUS:
            return f"seq {msg.sequence_num} declares capabilities {caps:#x}, without ReportsStatus"
        if caps & ~AgentCap.ALL:
            return (
                f"seq {msg.sequence_num} declares undefined capability bits"
                f" {caps & ~AgentCap.ALL:#x} (defined: up to 0x8000)"
            )
    return None


def check_decodable(seen: Sequence[Received]) -> str | None:
    """AGT-BODY: every message the mock received decodes as an AgentToServer."""
    for item in seen:
        if item.message is None:
            encoding = item.header("Content-Encoding")
            how = f", Content-Encoding: {encoding}" if encoding else ""
            return (
                f"a {item.transport} message ({len(item.raw)} bytes{how}) could not be read as"
                f" an AgentToServer: {item.problem}"
            )
    return None


def check_content_type(seen: Sequence[Received]) -> str | None:
    """AGT-CT: plain-HTTP requests are labelled application/x-protobuf."""
    for item in seen:
        if item.transport != "http":
            continue
        value = (item.header("Content-Type") or "").split(";")[0].strip().lower()
        if value != CONTENT_TYPE:
            seq = item.message.sequence_num if item.message else "?"
            return f"the request with seq {seq} has Content-Type {value or '(none)'!r}"
    return None


def check_one_in_flight(seen: Sequence[Received]) -> str | None:
    """AGT-ONE-INFLIGHT: never two plain-HTTP requests open at once."""
    for item in seen:
        if item.transport == "http" and item.in_flight > 1:
            seq = item.message.sequence_num if item.message else "?"
            return (
                f"the request with seq {seq} arrived while {item.in_flight - 1} earlier"
                " request(s) were still unanswered"
            )
    return None


def check_uid_header(seen: Sequence[Received]) -> str | None:
    """AGT-UID-HEADER: plain-HTTP requests carry OpAMP-Instance-UID, the uid's text form."""
    for item, msg in decoded(seen):
        if item.transport != "http":
            continue
        value = item.header(UID_HEADER)
        if value is None:
            return f"the request with seq {msg.sequence_num} has no {UID_HEADER} header"
        uid = bytes(msg.instance_uid)
        if len(uid) == 16 and value.strip().lower() != str(uuid.UUID(bytes=uid)):
            return (
                f"the request with seq {msg.sequence_num} has {UID_HEADER}: {value}, but its"
                f" instance_uid is {uuid.UUID(bytes=uid)}"
            )
    return None


def quick_resends(
    seen: Sequence[Received], gap: float, kinds: frozenset[str] = frozenset({"ack"})
) -> int:
    """The longest run of messages each sent less than ``gap`` s after a reply of these
    ``kinds`` (a plain ack by default) with nothing new in them (bare, or the previous
    message again): status reports that change are not a loop."""
    longest = run = 0
    for before, after in itertools.pairwise(seen):
        again = bare(after) or (
            before.message is not None
            and after.message is not None
            and repeats(before.message, after.message)
        )
        if before.reply.kind in kinds and after.at - before.at < gap and again:
            run += 1
            longest = max(longest, run)
        else:
            run = 0
    return longest


def repeats(rejected: AgentToServer, later: AgentToServer) -> bool:
    """Whether ``later`` is ``rejected`` again: the same content apart from sequence_num."""
    a, b = AgentToServer(), AgentToServer()
    a.CopyFrom(rejected)
    b.CopyFrom(later)
    a.sequence_num = b.sequence_num = 0
    return a.SerializeToString(deterministic=True) == b.SerializeToString(deterministic=True)


def bare(item: Received) -> bool:
    """A message with nothing to report: a heartbeat or poll."""
    msg = item.message
    return (
        msg is not None and not present_status_fields(msg) and not msg.HasField("agent_disconnect")
    )


#: A message sent this soon after a server push may be the agent's answer to it.
PUSH_ANSWER = 0.25


def check_heartbeat(
    seen: Sequence[Received], soonest: float, latest: float, pushes: Sequence[float] = ()
) -> str | None:
    """AGT-HEARTBEAT over the messages sent once the offer was in force: no silence longer
    than ``latest``, and heartbeats (bare messages) no closer than ``soonest``. A gap that
    ends or starts with a status report is not held to ``soonest`` (a status change may
    go out at once, and may or may not restart the heartbeat timer), nor one ending in a
    message sent within :data:`PUSH_ANSWER` of a server push (``pushes``: times; it may
    answer the push rather than be a heartbeat). The interval counts from the last
    message sent (spec l. 2110): pushes in between do not extend the silence allowed."""
    for before, after in itertools.pairwise(seen):
        gap = after.at - before.at
        if gap > latest:
            return f"no message for {gap:.3f} s (at most {latest:g} s expected)"
        answers = any(0.0 <= after.at - t <= PUSH_ANSWER for t in pushes)
        if bare(before) and bare(after) and gap < soonest and not answers:
            return f"heartbeats {gap:.3f} s apart (at least {soonest:g} s expected)"
    return None


# -- the agent's own clock ---------------------------------------------------------

#: Replies after which an agent waits for its poll or heartbeat interval: they ask for
#: nothing at once and report no failure.
_WAITING = frozenset({"ack", "heartbeat", "new-uid", "no-uid"})
#: Both capabilities an agent declares to take a heartbeat interval offered in
#: OpAMPConnectionSettings.
HEARTBEAT_CAPS = AgentCap.REPORTS_HEARTBEAT | AgentCap.ACCEPTS_OPAMP_CONNECTION_SETTINGS


def takes_heartbeat_offer(capabilities: int) -> bool:
    """Whether an agent declaring ``capabilities`` takes an offered heartbeat interval."""
    return capabilities & HEARTBEAT_CAPS == HEARTBEAT_CAPS


def offered_heartbeat(item: Received) -> int | None:
    """The heartbeat interval the reply to ``item`` offered, if it offered one."""
    sent = item.sent
    if sent is None or not sent.HasField("connection_settings"):
        return None
    return int(sent.connection_settings.opamp.heartbeat_interval_seconds) or None


def poll_gaps(seen: Sequence[Received]) -> list[float]:
    """The agent's poll (or heartbeat) periods as seen: the time from a reply that asked
    for nothing at once to the next message on the same connection."""
    gaps: list[float] = []
    for before, after in itertools.pairwise(seen):
        if before.reply.kind not in _WAITING or before.sent is None:
            continue
        if after.transport != before.transport or after.connection != before.connection:
            continue
        gaps.append(after.at - before.at)
    return gaps
