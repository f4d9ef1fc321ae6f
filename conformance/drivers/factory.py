"""One seam for opening a driver on a target, whatever the transport."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from conformance.drivers.exchange import Exchange
from conformance.drivers.http import HttpDriver
from conformance.drivers.ws import WsDriver
from conformance.target import Target, Transport
from conformance.wire import DEFAULT_MAX_MESSAGE_BYTES, AgentToServer


class OpAMPDriver(Protocol):
    """What tests need of any transport: send a message, get an Exchange."""

    transport: str

    def send(self, msg: AgentToServer, *, timeout: float | None = None) -> Exchange: ...

    def close(self) -> None: ...


def open_driver(
    target: Target,
    transport: Transport,
    headers: Sequence[tuple[str, str]] = (),
    *,
    timeout: float = 5.0,
    max_reply_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> HttpDriver | WsDriver:
    """A driver for ``target`` over ``transport`` (WebSocket connects on first send)."""
    if transport is Transport.HTTP:
        return HttpDriver(
            target.http_url, headers, timeout=timeout, max_reply_bytes=max_reply_bytes
        )
    return WsDriver(target.ws_url, headers, timeout=timeout, max_reply_bytes=max_reply_bytes)
