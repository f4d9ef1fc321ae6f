"""One agent's messages spread over several instances of a service (SRV-FS-STATELESS)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from conformance.drivers.exchange import Exchange
from conformance.drivers.factory import OpAMPDriver
from conformance.wire import AgentToServer


class SpreadDriver:
    """Sends each message to the instance ``choose`` picks, as a load balancer would.

    ``transport`` names the instance of the last send (``http@2``) so
    transcripts show the route; ``switched`` says whether that send went to
    another instance than the one before.
    """

    def __init__(self, drivers: Sequence[OpAMPDriver], choose: Callable[[], int]) -> None:
        self.drivers = list(drivers)
        self.choose = choose
        self.transport = "http"
        self.last: int | None = None
        self.switched = False

    def send(self, msg: AgentToServer, *, timeout: float | None = None) -> Exchange:
        index = self.choose() % len(self.drivers)
        self.switched = self.last is not None and index != self.last
        self.last = index
        self.transport = f"http@{index + 1}"
        return self.drivers[index].send(msg, timeout=timeout)

    def close(self) -> None:
        for driver in self.drivers:
            driver.close()
