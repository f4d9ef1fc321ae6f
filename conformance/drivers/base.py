"""What every driver shares: where it talks to, with which headers, within which bounds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

from conformance.wire import DEFAULT_MAX_MESSAGE_BYTES


class Driver:
    """Base of the transport drivers: endpoint, headers, time and size bounds."""

    transport = ""

    def __init__(
        self,
        url: str,
        headers: Sequence[tuple[str, str]] = (),
        *,
        timeout: float = 5.0,
        max_reply_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self.url = url
        self.headers = list(headers)
        self.timeout = timeout
        self.max_reply_bytes = max_reply_bytes

    def close(self) -> None:
        """Release the connection; never raises."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
