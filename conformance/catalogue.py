"""The requirement catalogue: one entry per rule the suite checks.

IDs and levels follow the project's rule digest of the OpAMP specification;
titles are our own words. A test names the requirements it checks with
``@pytest.mark.requirement("ID", ...)``; ``tests/test_catalogue.py`` keeps the
catalogue and the tests in step.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

SPEC_URL = "https://github.com/open-telemetry/opamp-spec/blob/main/specification.md"


class Level(enum.Enum):
    """How much a requirement weighs: MUST fails, SHOULD warns, MAY informs."""

    MUST = "MUST"
    SHOULD = "SHOULD"
    MAY = "MAY"
    #: Recorded as an observation, never a finding (e.g. how a target throttles).
    INFO = "INFO"


class Role(enum.Enum):
    """Which side of the protocol a requirement binds."""

    SERVER = "server"
    AGENT = "agent"


@dataclass(frozen=True)
class Requirement:
    """One catalogued rule."""

    id: str
    level: Level
    role: Role
    title: str
    source: str

    @property
    def area(self) -> str:
        """The rule area the ID's prefix names (the Allure feature, the JUnit class)."""
        return next(name for prefix, name in _AREAS if self.id.startswith(prefix))

    def describe(self) -> str:
        """``ID (LEVEL): title`` followed by the source link."""
        return f"{self.id} ({self.level.value}): {self.title}\n  see {self.source}"


#: Rule areas by ID prefix, most specific first.
_AREAS: tuple[tuple[str, str], ...] = (
    ("SRV-FS-", "full state"),
    ("SRV-", "server protocol"),
    ("AGT-", "agent protocol"),
    ("FLEET-SRV-", "Fleet API"),
    ("FLEET-AGT-", "Fleet agent"),
    ("", "other"),
)


def _spec(anchor: str) -> str:
    return f"{SPEC_URL}#{anchor}"


FLEET_SERVER_URL = "https://github.com/elastic/fleet-server/blob/main"


def _fleet(path: str) -> str:
    """A file of the fleet-server sources (its API schema and handlers)."""
    return f"{FLEET_SERVER_URL}/{path}"


ELASTIC_AGENT_URL = "https://github.com/elastic/elastic-agent"


def _agent(path: str) -> str:
    """A file of the elastic-agent sources, or its issue that motivates a rule."""
    return f"{ELASTIC_AGENT_URL}/{path}"


_LIVENESS = _agent("blob/main/internal/pkg/agent/application/monitoring/liveness.go")
_S = Role.SERVER
_A = Role.AGENT

REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement(
        "SRV-REPLY",
        Level.MUST,
        _S,
        "Every AgentToServer is answered by exactly one ServerToAgent, duplicates included;"
        " a well-formed one is never refused as malformed (error_response BAD_REQUEST)",
        _spec("plain-http-transport"),
    ),
    Requirement(
        "SRV-UID-ECHO",
        Level.MUST,
        _S,
        "ServerToAgent.instance_uid equals the instance_uid of the agent it answers",
        _spec("servertoagentinstance_uid"),
    ),
    Requirement(
        "SRV-NEW-UID",
        Level.SHOULD,
        _S,
        "A message with the RequestInstanceUid flag is answered with"
        " agent_identification.new_instance_uid other than the uid the agent sent (the spec"
        " says the uid 'will be sent back', without a keyword: judged as SHOULD)",
        _spec("agenttoserverflags"),
    ),
    Requirement(
        "SRV-HTTP-200",
        Level.SHOULD,
        _S,
        "Over plain HTTP, a ServerToAgent accepting a well-formed message comes with status 200"
        " (suite rule: the spec names no status; opamp-go's client, the reference"
        " implementation, drops the body of any other status as an invalid response)",
        _spec("plain-http-transport"),
    ),
    Requirement(
        "SRV-NEW-UID-LEN",
        Level.MUST,
        _S,
        "A new_instance_uid the server sends is 16 bytes long",
        _spec("servertoagentagent_identification"),
    ),
    Requirement(
        "SRV-NEW-UID-V7",
        Level.SHOULD,
        _S,
        "A new_instance_uid the server generates is a UUID v7 (version 7, RFC 9562 variant)",
        _spec("servertoagentagent_identification"),
    ),
    Requirement(
        "SRV-CAPS-FIRST",
        Level.MUST,
        _S,
        "The first ServerToAgent to an agent sets capabilities, with AcceptsStatus and no"
        " undefined bits",
        _spec("servertoagentcapabilities"),
    ),
    Requirement(
        "SRV-ERR-EXCL",
        Level.MUST,
        _S,
        "A ServerToAgent with error_response set leaves fields 3 to 11 unset",
        _spec("servertoagenterror_response"),
    ),
    Requirement(
        "SRV-GZIP",
        Level.MUST,
        _S,
        "Gzip-compressed request bodies (and chunked ones) are accepted exactly like plain ones",
        _spec("plain-http-transport"),
    ),
    Requirement(
        "SRV-GZIP-RESP",
        Level.SHOULD,
        _S,
        "The response is gzip-compressed when the request allows it (Accept-Encoding: gzip)",
        _spec("plain-http-transport"),
    ),
    Requirement(
        "SRV-CAP-RESPECT",
        Level.MUST,
        _S,
        "The server offers nothing the agent has not declared it accepts: remote_config,"
        " packages_available, command, connection_settings.opamp",
        _spec("servertoagent-message"),
    ),
    Requirement(
        "SRV-RCFG-HASH",
        Level.MUST,
        _S,
        "A server offering remote config sends remote_config when the agent reports a"
        " last_remote_config_hash other than the offered one",
        _spec("agentremoteconfigconfig_hash"),
    ),
    Requirement(
        "SRV-AUTH-401",
        Level.MUST,
        _S,
        "With authentication configured, a missing or wrong credential gets HTTP 401"
        " (WebSocket: at the upgrade)",
        _spec("security"),
    ),
    Requirement(
        "SRV-413",
        Level.MUST,
        _S,
        "A request over the server's size limit gets HTTP 413, with or without a"
        " Content-Length; one of exactly the limit is not refused with 413",
        _spec("plain-http-transport"),
    ),
    Requirement(
        "SRV-WS-HEADER",
        Level.SHOULD,
        _S,
        "A WebSocket message whose header is not 0 is treated as malformed, not answered"
        " as a normal message",
        _spec("websocket-message-format"),
    ),
    Requirement(
        "SRV-THROTTLE",
        Level.INFO,
        _S,
        "Under a short burst, what the server does: 429/503 with Retry-After (HTTP) or"
        " UNAVAILABLE with retry_info (WebSocket), or nothing",
        _spec("throttling"),
    ),
)

# Hostile input: the server survives anything and says what was wrong.
REQUIREMENTS += (
    Requirement(
        "SRV-NO-5XX",
        Level.MUST,
        _S,
        "No input (garbage, truncated or corrupted protobuf, wrong field types, bad"
        " instance_uid length, empty body, wrong headers) gets a 5xx, a hang or a dropped"
        " connection, and the server still answers a valid message afterwards",
        _spec("servererrorresponse-message"),
    ),
    Requirement(
        "SRV-BADREQ",
        Level.SHOULD,
        _S,
        "A malformed AgentToServer is answered by a ServerToAgent with error_response of type"
        " BAD_REQUEST (a bare HTTP 400 without it is a finding, and so is HTTP 401 or 403 to a"
        " request with a valid credential: suite rule, RFC 9110 says the credential failed)",
        _spec("servererrorresponse-message"),
    ),
)

# Drift detection: when the server must (or should not) ask for full status.
REQUIREMENTS += (
    Requirement(
        "SRV-FS-GAP",
        Level.MUST,
        _S,
        "A known agent whose sequence_num is not last + 1 (gap, duplicate, backwards, reset)"
        " and whose status is partial is asked for full status (ReportFullState)",
        _spec("agenttoserversequence_num"),
    ),
    Requirement(
        "SRV-FS-NEW",
        Level.MUST,
        _S,
        "An agent the server does not know, sending partial status, is asked for full status",
        _spec("agenttoserversequence_num"),
    ),
    Requirement(
        "SRV-FS-RECONNECT",
        Level.MUST,
        _S,
        "An agent that said goodbye (agent_disconnect) and comes back with sequence_num 0 and"
        " partial status is asked for full status",
        _spec("agenttoserveragent_disconnect"),
    ),
    Requirement(
        "SRV-FS-CAPS",
        Level.MUST,
        _S,
        "Full status is judged against the agent's declared capabilities: a message missing a"
        " sub-message a declared capability requires is not full, even with agent_description",
        _spec("agenttoservercapabilities"),
    ),
    Requirement(
        "SRV-FS-QUIET",
        Level.SHOULD,
        _S,
        "A known agent with a contiguous sequence_num is not asked for full status",
        _spec("servertoagentflags"),
    ),
    Requirement(
        "SRV-FS-QUIET-FULL",
        Level.SHOULD,
        _S,
        "An agent that has just sent full status is not asked for it again",
        _spec("servertoagentflags"),
    ),
    Requirement(
        "SRV-FS-CONVERGE",
        Level.SHOULD,
        _S,
        "An agent that answers every ReportFullState at once with full, contiguous status"
        " is soon left in peace: the exchange settles instead of looping",
        _spec("servertoagentflags"),
    ),
    Requirement(
        "SRV-FS-STATELESS",
        Level.SHOULD,
        _S,
        "Several instances of one service judge drift like one: an agent whose messages are"
        " spread over them is not asked for full status when its sequence is contiguous",
        _spec("agenttoserversequence_num"),
    ),
)

# Fleet REST API of a fleet-server: enrolment, check-in, status.
_OPENAPI = _fleet("model/openapi.yml")
REQUIREMENTS += (
    Requirement(
        "FLEET-SRV-ENROLL-401",
        Level.MUST,
        _S,
        "Enrolment with a missing, unknown, disabled or otherwise wrong (but well-formed) token"
        " gets 401, never another 4xx or a 5xx, so an agent can tell a permanent refusal",
        _fleet("internal/pkg/api/handleEnroll.go"),
    ),
    Requirement(
        "FLEET-SRV-NO-5XX",
        Level.MUST,
        _S,
        "No request to enroll, check-in, acks or status gets a 5xx (except 503 with a reason),"
        " a hang or a reset, whatever its headers, User-Agent, body or encoding",
        _OPENAPI,
    ),
    Requirement(
        "FLEET-SRV-ERROR-SHAPE",
        Level.SHOULD,
        _S,
        "Error bodies are JSON {statusCode, error, message} with statusCode equal to the HTTP"
        " status",
        _OPENAPI,
    ),
    Requirement(
        "FLEET-SRV-ENROLL-OK",
        Level.MUST,
        _S,
        "A correct enrolment returns 200 with item.id and item.access_api_key, and that key"
        " works for check-in",
        _OPENAPI,
    ),
    Requirement(
        "FLEET-SRV-CHECKIN-401",
        Level.MUST,
        _S,
        "A check-in with a wrong access key gets 401; one naming an agent the key does not"
        " belong to gets 401, 403 or 404, never a 5xx",
        _fleet("internal/pkg/api/handleCheckin.go"),
    ),
    Requirement(
        "FLEET-SRV-CHECKIN-POLL",
        Level.SHOULD,
        _S,
        "A check-in long poll with poll_timeout returns within that bound, with the same"
        " ack_token when nothing happened",
        _fleet("internal/pkg/api/handleCheckin.go"),
    ),
    Requirement(
        "FLEET-SRV-BAD-BODY",
        Level.SHOULD,
        _S,
        "A malformed request that carries a valid credential (an enrolment body with a bad"
        " type or shape, a check-in without status or with a poll_timeout that is no"
        " duration, a body that is not JSON or falsely claims gzip, a User-Agent the server"
        " refuses) is refused as malformed with a 4xx (or served), never with 401 or 403,"
        " which tell an agent its credential is bad (suite rule, from fleet-server's 400s)",
        _OPENAPI,
    ),
    Requirement(
        "FLEET-SRV-ACK",
        Level.MUST,
        _S,
        "An enrolled agent's acks with a list of events get 200 with action acks and one item"
        " per event, each with status 200, so the agent knows every action result arrived",
        _fleet("internal/pkg/api/handleAck.go"),
    ),
    Requirement(
        "FLEET-SRV-STATUS",
        Level.MUST,
        _S,
        "/api/status answers JSON: 200 with status HEALTHY, or 503 otherwise",
        _fleet("internal/pkg/api/handleStatus.go"),
    ),
    Requirement(
        "FLEET-SRV-RATE",
        Level.SHOULD,
        _S,
        "A 429 from the Fleet API carries Retry-After",
        _OPENAPI,
    ),
    Requirement(
        "FLEET-SRV-RATE-RECOVER",
        Level.SHOULD,
        _S,
        "A client that was rate-limited and waits as long as the 429's Retry-After says gets"
        " through again: the limit refills (suite rule, from fleet-server's token-bucket"
        " limits and RFC 9110 Retry-After)",
        _fleet("internal/pkg/limit/limiter.go"),
    ),
    Requirement(
        "FLEET-SRV-413",
        Level.SHOULD,
        _S,
        "A request body over the Fleet API's size limit is refused with 413, not another"
        " status (fleet-server: body too large -> 413)",
        _OPENAPI,
    ),
    Requirement(
        "AGT-FIRST-FULL",
        Level.MUST,
        _A,
        "The first status report of the process is full: agent_description and every status"
        " field its capabilities promise (the first message, or a burst within 1 s)",
        _spec("status-reporting"),
    ),
    Requirement(
        "AGT-SEQ",
        Level.MUST,
        _A,
        "sequence_num grows by exactly 1 per message sent; the same bytes are sent again only"
        " as the retry of a throttled request (429, 503, UNAVAILABLE)",
        _spec("agenttoserversequence_num"),
    ),
    Requirement(
        "AGT-FULL-ON-FLAG",
        Level.MUST,
        _A,
        "After a reply with ReportFullState the next message carries full status",
        _spec("servertoagentflags"),
    ),
    Requirement(
        "AGT-NO-LOOP",
        Level.MUST,
        _A,
        "A plain acknowledgement, or a BAD_REQUEST error reply, does not make the agent send"
        " again before its poll or heartbeat interval (spec: no status report unless the"
        " reply changed the agent's status)",
        _spec("plain-http-transport"),
    ),
    Requirement(
        "AGT-UID",
        Level.MUST,
        _A,
        "instance_uid is 16 bytes and fixed for the process unless the server assigns a new one "
        "(a UUID v7 is recommended)",
        _spec("agenttoserverinstance_uid"),
    ),
    Requirement(
        "AGT-NEW-UID",
        Level.MUST,
        _A,
        "After agent_identification.new_instance_uid every later message carries the new uid",
        _spec("agentidentificationnew_instance_uid"),
    ),
    Requirement(
        "AGT-CAPS",
        Level.MUST,
        _A,
        "Every message declares capabilities with ReportsStatus and no undefined bit (above "
        "0x8000)",
        _spec("agenttoservercapabilities"),
    ),
    Requirement(
        "AGT-CT",
        Level.MUST,
        _A,
        "Plain-HTTP requests carry Content-Type: application/x-protobuf",
        _spec("plain-http-transport"),
    ),
    Requirement(
        "AGT-BODY",
        Level.MUST,
        _A,
        "Every message reads as an AgentToServer: a plain-HTTP body as sent, or gunzipped when"
        " it says Content-Encoding: gzip (the only compression the spec names), and every"
        " WebSocket message after its header",
        _spec("plain-http-transport"),
    ),
    Requirement(
        "AGT-ONE-INFLIGHT",
        Level.MUST,
        _A,
        "Over plain HTTP an agent never has two requests in flight",
        _spec("plain-http-transport"),
    ),
    Requirement(
        "AGT-DISCONNECT",
        Level.MUST,
        _A,
        "Over WebSocket, the last message before the agent stops (SIGTERM, SIGINT) carries "
        "agent_disconnect",
        _spec("agenttoserveragent_disconnect"),
    ),
    Requirement(
        "AGT-DISCONNECT-HTTP",
        Level.MAY,
        _A,
        "Over plain HTTP, the last message before the agent stops (SIGTERM, SIGINT) carries"
        " agent_disconnect (the spec says it is not necessary: recorded, never a finding)",
        _spec("agenttoserveragent_disconnect"),
    ),
    Requirement(
        "AGT-RETRY-AFTER",
        Level.SHOULD,
        _A,
        "After 429 or 503 with Retry-After, in seconds or as an HTTP date (WebSocket:"
        " UNAVAILABLE with retry_info, or a refused upgrade), the next attempt waits at least"
        " that long, and comes no later than that plus the agent's own longest backoff",
        _spec("throttling"),
    ),
    Requirement(
        "AGT-RETRY-MIN",
        Level.SHOULD,
        _A,
        "A retry after throttling without a hint (429 or 503 without Retry-After, UNAVAILABLE"
        " without retry_info) waits at least the configured floor (--backoff-floor; the spec"
        " recommends 30 s)",
        _spec("throttling"),
    ),
    Requirement(
        "AGT-BACKOFF",
        Level.SHOULD,
        _A,
        "Repeated throttling or refused connections are retried with exponential backoff:"
        " intervals grow, stay under the cap, and two agents do not retry in lockstep",
        _spec("throttling"),
    ),
    Requirement(
        "AGT-BADREQ",
        Level.SHOULD,
        _A,
        "A message answered with BAD_REQUEST is not sent again",
        _spec("servererrorresponsetype"),
    ),
    Requirement(
        "AGT-HEARTBEAT",
        Level.MUST,
        _A,
        "An agent with ReportsHeartbeat and AcceptsOpAMPConnectionSettings sends at an offered"
        " heartbeat_interval_seconds (HTTP: polls at it)",
        _spec("opampconnectionsettingsheartbeat_interval_seconds"),
    ),
    Requirement(
        "AGT-UID-HEADER",
        Level.SHOULD,
        _A,
        "Plain-HTTP requests carry OpAMP-Instance-UID with the uid in canonical text form",
        _spec("plain-http-transport"),
    ),
    Requirement(
        "AGT-ROBUST",
        Level.SHOULD,
        _A,
        "An unexpected or failing reply (empty, no instance_uid, wrong Content-Type, garbage,"
        " 500, throttling, a refused or closed connection) does not stop the agent: it keeps"
        " talking (suite rule)",
        _spec("servertoagent-message"),
    ),
    Requirement(
        "FLEET-AGT-ENROLL-401",
        Level.MUST,
        _A,
        "Under a permanent 401 on enrolment the agent stops, or retries with intervals never"
        " below the backoff floor and growing towards the cap: never a tight loop",
        _agent("issues/13549"),
    ),
    Requirement(
        "FLEET-AGT-ENROLL-BACKOFF",
        Level.SHOULD,
        _A,
        "Transient enrolment failures are retried with jittered backoff within [floor, cap],"
        " and Retry-After is honoured",
        _agent("blob/main/internal/pkg/agent/cmd/enroll_cmd.go"),
    ),
    Requirement(
        "FLEET-AGT-LIVENESS",
        Level.MUST,
        _A,
        "/liveness follows the Fleet connection: failing check-ins fail failon=failed and"
        " failon=degraded, a Warning header fails failon=degraded only, recovery passes both,"
        " and failon=heartbeat passes while the agent runs",
        _agent("issues/13549"),
    ),
    Requirement(
        "FLEET-AGT-LIVENESS-PARAM",
        Level.SHOULD,
        _A,
        "An unknown failon value is a client error (400), not 500 or 200",
        _LIVENESS,
    ),
    Requirement(
        "FLEET-AGT-CHECKIN-401",
        Level.MUST,
        _A,
        "Repeated 401 answers to check-ins are never reported healthy by /liveness?failon=degraded",
        _agent("issues/13549"),
    ),
    Requirement(
        "FLEET-AGT-ENROLL-ONCE",
        Level.MUST,
        _A,
        "Once enrolment is answered 200, the agent checks in as the agent it names, with the"
        " access key it carries, instead of enrolling again (suite rule, from fleet/facts:"
        " the enrolment reply's id and access_api_key are what check-ins use)",
        _fleet("internal/pkg/api/handleEnroll.go"),
    ),
)

CATALOGUE: dict[str, Requirement] = {r.id: r for r in REQUIREMENTS}


class UnknownRequirement(KeyError):
    """A test or option named an ID the catalogue does not have."""


def get(req_id: str) -> Requirement:
    """Look a requirement up by ID."""
    try:
        return CATALOGUE[req_id]
    except KeyError:
        raise UnknownRequirement(req_id) from None
