"""Generated and hand-picked odd requests to the Fleet API (FLEET-SRV-NO-5XX).

Hypothesis varies the endpoint, the credential (none, a foreign scheme, not
base64, a well-formed unknown key, the real enrollment token), the
User-Agent version, the content type and encoding, and the body (valid,
mutated, random JSON, random bytes). :data:`EDGE_BODIES` are sent every run
with the real token and a valid User-Agent, so that a server that breaks
only on a rare, near-valid request is still found every time.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from conformance.fleet.client import (
    ENROLL_PATH,
    OLDEST_AGENT_VERSION,
    STATUS_PATH,
    acks_path,
    api_key,
    checkin_path,
    enrol_body,
    user_agent,
)

#: Stands for the real enrollment token; replaced when the request is sent.
REAL_TOKEN = "<enrollment token>"
#: An ``ApiKey`` credential that is valid base64 of ``id:key`` whose bytes are not UTF-8
#: (fleet-server, in Go, takes any bytes; a decoder that wants text must still answer 4xx).
NOT_UTF8_KEY = "ApiKey " + base64.b64encode(b"\xff\xfe:\xfd\xfc").decode()


@dataclass(frozen=True)
class OddRequest:
    method: str
    path: str
    authorization: str | None
    agent: str | None
    content_type: str | None
    body: bytes
    gzip: bool = False
    note: str = ""

    def __repr__(self) -> str:
        auth = "none" if self.authorization is None else self.authorization[:24]
        body = self.body[:40]
        return (
            f"OddRequest({self.method} {self.path}, auth={auth!r}, agent={self.agent!r},"
            f" type={self.content_type!r}, gzip={self.gzip}, body={body!r}"
            f"{'...' if len(self.body) > 40 else ''})"
        )


def _well_formed_key(key_id: uuid.UUID, secret: uuid.UUID) -> str:
    """base64 of ``id:secret``: the shape of an Elasticsearch API key, unknown to the server."""
    return api_key(key_id.hex[:20], secret.hex)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)

#: Header values: printable ASCII (what an HTTP client can put on the wire as is).
_header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)

_authorizations = st.one_of(
    st.none(),
    st.just(REAL_TOKEN),
    st.sampled_from(
        [
            "Bearer abc",
            "ApiKey",
            "ApiKey ",
            "ApiKey !!!not-base64!!!",
            "Basic Zm9vOmJhcg==",
            NOT_UTF8_KEY,
        ]
    ),
    st.builds(_well_formed_key, st.uuids(), st.uuids()).map(lambda k: "ApiKey " + k),
    _header_text.map(lambda t: "ApiKey " + t),
)

_versions = st.tuples(st.integers(0, 99), st.integers(0, 99), st.integers(0, 99)).map(
    lambda v: f"{v[0]}.{v[1]}.{v[2]}"
)
_agents = st.one_of(
    st.none(),
    st.just(user_agent(OLDEST_AGENT_VERSION)),
    _versions.map(user_agent),
    _header_text,
    st.sampled_from(["elastic agent ", "Elastic Agent vX.Y.Z", "curl/8.0"]),
)

_paths = st.one_of(
    st.just(ENROLL_PATH),
    st.just(ENROLL_PATH),
    st.just(STATUS_PATH),
    st.uuids().map(lambda u: checkin_path(str(u))),
    st.uuids().map(lambda u: acks_path(str(u))),
    st.text(alphabet="abcdef0123456789-", min_size=1, max_size=80).map(checkin_path),
)


@st.composite
def _bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["valid", "mutated", "json", "bytes", "empty"]))
    if kind == "valid":
        return json.dumps(enrol_body()).encode()
    if kind == "mutated":
        body: dict[str, Any] = enrol_body()
        key = draw(st.sampled_from(["type", "metadata", "id", "replace_token", "status"]))
        body[key] = draw(json_values)
        return json.dumps(body).encode()
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    if kind == "bytes":
        return draw(st.binary(min_size=1, max_size=200))
    return b""


@st.composite
def odd_requests(draw: st.DrawFn) -> OddRequest:
    path = draw(_paths)
    method = "GET" if path == STATUS_PATH else draw(st.sampled_from(["POST", "POST", "PUT"]))
    return OddRequest(
        method=method,
        path=path,
        authorization=draw(_authorizations),
        agent=draw(_agents),
        content_type=draw(
            st.sampled_from(["application/json", None, "text/plain", "application/x-protobuf"])
        ),
        body=draw(_bodies()),
        gzip=draw(st.booleans()),
    )


#: Near-valid enrolment bodies every run sends with the real token and a valid User-Agent.
EDGE_BODIES: tuple[tuple[str, bytes], ...] = (
    ("unknown type", json.dumps(enrol_body("NOT-A-TYPE")).encode()),
    ("type missing", json.dumps({"metadata": {}}).encode()),
    ("metadata not an object", json.dumps({"type": "PERMANENT", "metadata": 7}).encode()),
    ("body a JSON array", b"[]"),
    ("body JSON null", b"null"),
    ("body not JSON", b"{not json"),
    ("body empty", b""),
)
