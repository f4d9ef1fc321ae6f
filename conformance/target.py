"""Target URLs and headers: parsing, normalising and redacting them."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from conformance.wire import DEFAULT_PATH


class Transport(enum.Enum):
    HTTP = "http"
    WS = "ws"


class TargetError(ValueError):
    """A ``--target`` or ``--target-header`` value that cannot be used."""


_WS_OF = {"http": "ws", "https": "wss"}
_HTTP_OF = {v: k for k, v in _WS_OF.items()}


@dataclass(frozen=True)
class Target:
    """One server under test: its OpAMP endpoint over both transports."""

    given: str
    http_url: str
    ws_url: str
    #: The transport the URL's scheme names (ws:// and wss:// mean WebSocket).
    scheme_transport: Transport

    def url(self, transport: Transport) -> str:
        return self.http_url if transport is Transport.HTTP else self.ws_url

    @property
    def display(self) -> str:
        """The URL as given, with any user:password@ part redacted."""
        parts = urlsplit(self.given)
        if "@" not in parts.netloc:
            return self.given
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit((parts.scheme, "***@" + host, parts.path, parts.query, ""))

    @property
    def base_url(self) -> str:
        """scheme://host:port of the HTTP side (where a Fleet API would live)."""
        parts = urlsplit(self.http_url)
        return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def parse_target(text: str) -> Target:
    """Parse a ``--target`` URL; a URL without a path gets ``/v1/opamp``."""
    parts = urlsplit(text.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https", "ws", "wss"):
        raise TargetError(
            f"--target {text!r}: the scheme must be http, https, ws or wss (got {scheme or 'none'})"
        )
    if not parts.hostname:
        raise TargetError(f"--target {text!r}: no host name")
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise TargetError(f"--target {text!r}: {exc}") from None
    path = parts.path if parts.path not in ("", "/") else DEFAULT_PATH
    if scheme in _WS_OF:
        http_scheme, ws_scheme, own = scheme, _WS_OF[scheme], Transport.HTTP
    else:
        http_scheme, ws_scheme, own = _HTTP_OF[scheme], scheme, Transport.WS
    return Target(
        given=text,
        http_url=urlunsplit((http_scheme, parts.netloc, path, parts.query, "")),
        ws_url=urlunsplit((ws_scheme, parts.netloc, path, parts.query, "")),
        scheme_transport=own,
    )


def parse_header(text: str) -> tuple[str, str]:
    """Parse ``"Name: value"`` from ``--target-header``."""
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or not name or any(c.isspace() for c in name):
        raise TargetError(f"--target-header must look like 'Name: value' (got {redact(text)!r})")
    return name, value.strip()


def redact(value: str) -> str:
    """Hide a secret but keep enough to recognise its shape."""
    if len(value) <= 4:
        return "***"
    return value[:2] + "***"


def redact_header(name: str, value: str) -> str:
    """``Name: <redacted>`` for printing a credential header."""
    return f"{name}: {redact(value)}"
