"""The targets of a session: the embedded reference or the user's, probed once."""

from __future__ import annotations

from dataclasses import dataclass, field

from conformance.drivers import Exchange, Problem
from conformance.drivers.http import HttpDriver
from conformance.drivers.ws import WsDriver
from conformance.messages import heartbeat, new_uid
from conformance.plugin.embedded import EmbeddedServer
from conformance.plugin.options import Options
from conformance.target import Target, Transport, parse_target


class Unreachable(RuntimeError):
    """A target that cannot be used at all: one clear error for the whole session."""


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


def check_reachable(options: Options) -> None:
    """Raise :class:`Unreachable` unless every ``--target`` answers on its primary transport."""
    for target in options.targets:
        transport = options.primary_transport(target)
        seen = probe(target, transport, list(options.headers), options.profile.probe_timeout)
        if unreachable(seen):
            raise Unreachable(
                f"target {target.url(transport)} is unreachable over {transport.value}: "
                f"{seen.problem.value if seen.problem else ''} ({seen.detail}); "
                "check the URL and that the server is running"
            )
        if transport is Transport.WS and seen.problem is Problem.REJECTED:
            raise Unreachable(
                f"target {target.ws_url} refused the WebSocket upgrade ({seen.detail});"
                " use an http:// URL or --transport http for plain HTTP"
            )


@dataclass(repr=False)
class TargetSession:
    """Targets for this test session and what each transport is known to do."""

    options: Options
    targets: list[Target] = field(default_factory=list)
    embedded: EmbeddedServer | None = None
    _availability: dict[tuple[str, Transport], str | None] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"TargetSession({', '.join(self.describe()) or 'not started'})"

    def start(self) -> None:
        if self.options.embedded:
            self.embedded = EmbeddedServer()
            self.targets = [parse_target(self.embedded.start())]
        else:
            self.targets = list(self.options.targets)

    def stop(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()

    @property
    def primary(self) -> Target:
        return self.targets[0]

    def describe(self) -> list[str]:
        if self.embedded is not None:
            return [f"embedded reference server {self.primary.http_url}"]
        return [t.given for t in self.targets]

    def unavailable_reason(self, target: Target, transport: Transport) -> str | None:
        """Why ``transport`` is not tested on ``target`` (``None``: it is tested).

        The transport the user named (or the URL's scheme names) is always
        tested; the other one only when the target is seen to speak it.
        """
        if transport not in self.options.selected_transports(target):
            return f"--transport {self.options.transport} selected"
        if transport is self.options.primary_transport(target) or self.embedded is not None:
            return None
        key = (target.given, transport)
        if key not in self._availability:
            seen = probe(
                target, transport, list(self.options.headers), self.options.profile.probe_timeout
            )
            reason = None
            if transport is Transport.WS and seen.status != 101:
                reason = f"target does not accept WebSocket at {target.ws_url}: " + (
                    seen.detail or (seen.problem.value if seen.problem else "")
                )
            elif (
                transport is Transport.HTTP
                and seen.reply is None
                and seen.status
                not in (
                    401,
                    403,
                )
            ):
                reason = f"target does not answer OpAMP over plain HTTP at {target.http_url}: "
                reason += seen.detail or (seen.problem.value if seen.problem else str(seen.status))
            self._availability[key] = reason
        return self._availability[key]
