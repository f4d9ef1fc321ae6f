"""Drivers: the suite's OpAMP client over plain HTTP and WebSocket.

A driver never raises for what a target does: every reply, timeout,
refusal or malformed answer becomes an :class:`~conformance.drivers.exchange.Exchange`.
"""

from conformance.drivers.exchange import Exchange, Problem
from conformance.drivers.factory import OpAMPDriver, open_driver
from conformance.drivers.http import HttpDriver
from conformance.drivers.ws import WsDriver

__all__ = ["Exchange", "HttpDriver", "OpAMPDriver", "Problem", "WsDriver", "open_driver"]
