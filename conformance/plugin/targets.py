"""The targets of a session: the embedded reference or the user's, probed once."""

from __future__ import annotations

import base64
import secrets
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit, urlunsplit

from conformance.drivers import Exchange, Problem
from conformance.drivers.http import NO_CONNECTION, HttpDriver
from conformance.drivers.http11 import speaks_tls
from conformance.drivers.ws import WsDriver
from conformance.messages import heartbeat, new_uid
from conformance.outcomes import NotApplicable, NotJudged
from conformance.plugin.embedded import EmbeddedServer
from conformance.plugin.options import Options
from conformance.target import Target, Transport, parse_target

#: Statuses that say a transport is not served at that URL, by transport.
_ABSENT: dict[Transport, frozenset[int]] = {
    Transport.HTTP: frozenset({404, 405, 426}),
    Transport.WS: frozenset({200, 400, 404, 405, 426, 501}),
}
#: Wait before the second probe of a throttled or failing transport, in seconds.
PROBE_RETRY_WAIT = 1.0


def _busy(seen: Exchange) -> bool:
    """Throttled, or a server error: worth one more try before judging availability."""
    return seen.status is not None and (seen.status == 429 or seen.status >= 500)


def _speaks(transport: Transport, seen: Exchange) -> bool:
    """Whether the probe shows the transport is served (well or badly: then it is tested)."""
    if seen.status in (401, 403):
        return True
    if transport is Transport.WS:
        return seen.status == 101
    return seen.status == 200 or seen.reply is not None


class Unreachable(RuntimeError):
    """A target that cannot be used at all: one clear error for the whole session.

    A misconfigured run (wrong scheme, a redirect, nothing listening, a server
    too slow for the timeout) is a usage error, never a finding against the target.
    """


def probe(
    target: Target, transport: Transport, headers: list[tuple[str, str]], timeout: float
) -> Exchange:
    """One harmless exchange from a throwaway agent (HTTP) or an upgrade (WebSocket)."""
    if transport is Transport.HTTP:
        with HttpDriver(target.http_url, headers, timeout=timeout) as http:
            return http.send(heartbeat(new_uid(), 0))
    with WsDriver(target.ws_url, headers, timeout=timeout) as ws:
        return ws.connect()


def unreachable(exchange: Exchange) -> bool:
    return exchange.problem in (Problem.CONNECT, Problem.TIMEOUT)


def check_reachable(options: Options, request_timeout: float | None = None) -> None:
    """Raise :class:`Unreachable` unless every ``--target`` answers on its primary transport.

    Each target is probed once, bounded by ``request_timeout`` (``--request-timeout``,
    when given) or else the profile's probe bound. A target that answers
    well costs one exchange; only a failed probe is looked at further.
    """
    timeout = options.profile.probe_timeout if request_timeout is None else request_timeout
    for target in options.targets:
        transport = options.primary_transport(target)
        seen = probe(target, transport, list(options.headers), timeout)
        reason = startup_problem(target, transport, seen, list(options.headers), timeout)
        if reason is not None:
            raise Unreachable(reason)


def startup_problem(
    target: Target,
    transport: Transport,
    seen: Exchange,
    headers: list[tuple[str, str]],
    timeout: float,
) -> str | None:
    """Why the start-up probe's answer ``seen`` makes the run unusable (``None``: usable)."""
    url = target.url(transport)
    parts = urlsplit(url)
    secure = parts.scheme in ("https", "wss")
    host, port = parts.hostname or "", parts.port or (443 if secure else 80)
    if seen.status is not None and 300 <= seen.status < 400:
        location = seen.header("location")
        where = f"to {urljoin(url, location)}" if location else "without a Location"
        return (
            f"target {url} answered the start-up probe with a redirect (HTTP {seen.status})"
            f" {where}; the suite does not follow redirects: give the URL it should test"
            " as --target"
        )
    if not secure and _looks_like_tls(transport, seen) and speaks_tls(host, port, timeout):
        fixed = _with_scheme(target.given, "https" if transport is Transport.HTTP else "wss")
        return (
            f"target {url}: this port speaks TLS, not plain"
            f" {'HTTP' if transport is Transport.HTTP else 'WebSocket'}:"
            f" use --target={fixed}"
        )
    if secure and seen.problem is Problem.CONNECT and _tls_refused(seen.detail):
        if "CERTIFICATE_VERIFY_FAILED" in seen.detail:
            return (
                f"target {url}: its TLS certificate is not trusted ({seen.detail}); set"
                " SSL_CERT_FILE to the CA bundle that signed it"
            )
        plain = probe(parse_target(_with_scheme(target.given, "http")), transport, headers, timeout)
        # A TLS server that refused our handshake (say it wants a client certificate)
        # may still answer plain text with a 400: only a port that completes no TLS
        # handshake at all is a plain-HTTP port.
        if plain.status is not None and not speaks_tls(host, port, timeout):
            fixed = _with_scheme(target.given, "http" if transport is Transport.HTTP else "ws")
            return (
                f"target {url}: this port speaks plain HTTP, not TLS ({seen.detail}):"
                f" use --target={fixed}"
            )
    if seen.problem is Problem.CONNECT:
        return (
            f"target {url} is unreachable over {transport.value}: could not connect"
            f" ({seen.detail}); check the URL and that the server is running"
        )
    if seen.problem is Problem.TIMEOUT:
        if seen.status is not None and transport is Transport.HTTP:
            return (
                f"target {url} answers too slowly: the head of its answer arrived"
                f" (HTTP {seen.status}) but not the whole body within {timeout:g} s;"
                " raise --request-timeout if the server is only slow"
            )
        if seen.detail.startswith(NO_CONNECTION):
            return (
                f"target {url} is unreachable over {transport.value}: could not connect within"
                f" {timeout:g} s; check the host, the port and any firewall between"
            )
        what = "the WebSocket upgrade" if transport is Transport.WS else "the OpAMP request"
        return (
            f"target {url} accepted the connection but did not answer {what} within"
            f" {timeout:g} s; check that it serves OpAMP at this URL, or raise"
            " --request-timeout if the server is only slow"
        )
    if transport is Transport.WS and seen.problem is Problem.REJECTED:
        return (
            f"target {target.ws_url} refused the WebSocket upgrade ({seen.detail});"
            " use an http:// URL or --transport http for plain HTTP"
        )
    return None


def _looks_like_tls(transport: Transport, seen: Exchange) -> bool:
    """Whether a plain request's outcome is what a TLS port gives it: a dropped
    connection, bytes that are not HTTP, silence, or a 400 (Go's and nginx's answer)."""
    if seen.status == 400:
        return True
    if transport is Transport.WS:
        return seen.problem in (Problem.CONNECT, Problem.TIMEOUT)
    if seen.problem is Problem.TIMEOUT:
        return seen.status is None and not seen.detail.startswith(NO_CONNECTION)
    return seen.problem is Problem.DISCONNECTED


def _tls_refused(detail: str) -> bool:
    """Whether a connect failure happened in the TLS handshake (HTTP and WebSocket drivers)."""
    return detail.startswith("TLS:") or "SSL" in detail


def _with_scheme(given: str, scheme: str) -> str:
    """``given`` (a --target value) with its scheme replaced."""
    return urlunsplit(urlsplit(given)._replace(scheme=scheme))


def make_enrollment_token() -> str:
    """A random enrollment token shaped like Elasticsearch's: base64 of ``id:secret``."""
    raw = f"{secrets.token_hex(10)}:{secrets.token_urlsafe(16)}"
    return base64.b64encode(raw.encode()).decode()


#: Instances of the embedded reference: two processes sharing state, one service.
EMBEDDED_INSTANCES = 2
#: The embedded reference's request size limit: small, so SRV-413 runs in every profile.
EMBEDDED_MAX_BODY = 1024 * 1024
#: The header the embedded reference requires (with a random token), so SRV-AUTH-401 runs.
EMBEDDED_AUTH_HEADER = "Authorization"


@dataclass(repr=False)
class TargetSession:
    """Targets for this test session and what each transport is known to do.

    Without ``--target``, the bundled reference runs as a small service:
    :data:`EMBEDDED_INSTANCES` processes sharing agent state through one
    SQLite file, requiring a random bearer token, with a 1 MiB size limit.
    """

    options: Options
    targets: list[Target] = field(default_factory=list)
    embedded: list[EmbeddedServer] = field(default_factory=list)
    #: Headers sent with every request: the user's, or the embedded reference's token.
    headers: list[tuple[str, str]] = field(default_factory=list)
    #: Fleet enrollment tokens: a working one and a disabled one, when known.
    enrollment_token: str | None = None
    disabled_enrollment_token: str | None = None
    #: The target's size limit (SRV-413), and whether it is known rather than the default.
    max_message_bytes: int = 0
    size_limit_known: bool = False
    _availability: dict[tuple[str, Transport], NotApplicable | NotJudged | None] = field(
        default_factory=dict
    )
    _state_dir: tempfile.TemporaryDirectory[str] | None = None

    def __repr__(self) -> str:
        return f"TargetSession({', '.join(self.describe()) or 'not started'})"

    def start(self) -> None:
        options = self.options
        self.headers = list(options.headers)
        self.enrollment_token = options.enrollment_token
        self.disabled_enrollment_token = options.disabled_enrollment_token
        self.max_message_bytes = options.max_message_bytes
        self.size_limit_known = options.max_message_given
        if not options.embedded:
            self.targets = list(options.targets)
            return
        if not options.max_message_given:
            self.max_message_bytes, self.size_limit_known = EMBEDDED_MAX_BODY, True
        credential = (EMBEDDED_AUTH_HEADER, f"Bearer {secrets.token_urlsafe(18)}")
        self.headers.append(credential)
        self._state_dir = tempfile.TemporaryDirectory(prefix="fleet-conformance-state-")
        self.enrollment_token = self.enrollment_token or make_enrollment_token()
        self.disabled_enrollment_token = self.disabled_enrollment_token or make_enrollment_token()
        args = [
            f"--enrollment-token={self.enrollment_token}",
            f"--disabled-enrollment-token={self.disabled_enrollment_token}",
            f"--auth-header={credential[0]}: {credential[1]}",
            f"--max-body={self.max_message_bytes}",
            f"--state-file={Path(self._state_dir.name) / 'agents.sqlite'}",
        ]
        try:
            for _ in range(EMBEDDED_INSTANCES):
                server = EmbeddedServer(args=args)
                self.embedded.append(server)
                self.targets.append(parse_target(server.start()))
        except BaseException:
            self.stop()  # no instance outlives a failed start
            raise

    def stop(self) -> None:
        for server in self.embedded:
            server.stop()
        if self._state_dir is not None:
            self._state_dir.cleanup()

    @property
    def primary(self) -> Target:
        return self.targets[0]

    def describe(self) -> list[str]:
        if self.embedded:
            urls = ", ".join(t.http_url for t in self.targets)
            return [f"embedded reference server ({len(self.embedded)} instances: {urls})"]
        return [t.given for t in self.targets]

    def unavailable(self, target: Target, transport: Transport) -> NotApplicable | NotJudged | None:
        """Why ``transport`` is not tested on ``target`` (``None``: it is tested).

        The transport the user named (or the URL's scheme names) is always
        tested; the other one only when the target is seen to speak it. A
        target that answers the probe with an HTTP status shows it lacks the
        transport (not applicable); one that does not answer leaves it not
        judged; a transport left out by ``--transport`` is not judged either.
        """
        if transport not in self.options.selected_transports(target):
            return NotJudged(
                f"--transport {self.options.transport} leaves {transport.value} out",
                "run with --transport=auto (the default) to test both transports",
            )
        if transport is self.options.primary_transport(target) or self.embedded:
            return None
        key = (target.given, transport)
        if key not in self._availability:
            self._availability[key] = self._probe_transport(target, transport)
        return self._availability[key]

    def _probe_transport(
        self, target: Target, transport: Transport
    ) -> NotApplicable | NotJudged | None:
        """Whether the target speaks ``transport`` (``None``: test it).

        Only an answer that says "no such thing here" makes the transport not
        applicable: 404, 405 or 426 to the POST; 400, 404, 405, 426, 501 or a
        plain 200 to the upgrade. An answer that speaks the transport badly
        (a 200 with an empty or undecodable body, 401, 403) is tested, so its
        faults are judged; throttling or a server error gets one more try and
        then leaves the transport not judged.
        """
        url = target.ws_url if transport is Transport.WS else target.http_url
        what = "WebSocket upgrade" if transport is Transport.WS else "OpAMP POST"
        seen = probe(target, transport, self.headers, self.options.profile.probe_timeout)
        if _busy(seen):
            time.sleep(PROBE_RETRY_WAIT)
            seen = probe(target, transport, self.headers, self.options.profile.probe_timeout)
        if _speaks(transport, seen):
            return None
        if seen.status in _ABSENT[transport]:
            answer = f"HTTP {seen.status}" + (f" ({seen.detail})" if seen.detail else "")
            return NotApplicable(
                f"the target does not speak {transport.value} at {url}",
                f"a {what} to {url} was answered {answer}",
            )
        problem = seen.problem.value if seen.problem else f"HTTP {seen.status}"
        return NotJudged(
            f"the {what} to {url} got no usable answer ({problem}: {seen.detail})",
            f"make {url} answer within --request-timeout without throttling or a server"
            " error (fewer -n workers, a quieter target), or raise --request-timeout",
        )

    def require_transport(self, target: Target, transport: Transport) -> None:
        """End the test (not applicable or not judged) unless ``transport`` is tested."""
        outcome = self.unavailable(target, transport)
        if outcome is not None:
            raise outcome
