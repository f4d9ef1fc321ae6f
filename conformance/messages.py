"""Building AgentToServer messages the way agents send them."""

from __future__ import annotations

import os
import time

from conformance.model.fullstate import required_status_fields
from conformance.wire import AgentCap, AgentToServer


def new_uid() -> bytes:
    """A fresh instance_uid: a UUID v7, as agents SHOULD use (rules: AGT-UID).

    Any 16 bytes are a valid uid; servers get arbitrary ones from the
    hostile-input test, which judges them on their own, so one server's
    strictness about the UUID form does not mask every other rule.
    """
    millis = time.time_ns() // 1_000_000
    raw = bytearray(millis.to_bytes(6, "big") + os.urandom(10))
    raw[6] = 0x70 | (raw[6] & 0x0F)  # version 7
    raw[8] = 0x80 | (raw[8] & 0x3F)  # RFC 9562 variant
    return bytes(raw)


def _fill_status_field(msg: AgentToServer, name: str) -> None:
    """Put a small, valid value into status sub-message ``name``."""
    if name == "agent_description":
        attr = msg.agent_description.identifying_attributes.add()
        attr.key = "service.name"
        attr.value.string_value = "fleet-conformance-agent"
    elif name == "health":
        msg.health.healthy = True
        msg.health.status = "running"
    elif name == "effective_config":
        entry = msg.effective_config.config_map.config_map[""]
        entry.body = b"receivers: {}\n"
        entry.content_type = "text/yaml"
    elif name == "remote_config_status":
        msg.remote_config_status.status = 1  # type: ignore[assignment]  # APPLIED
    elif name == "package_statuses":
        msg.package_statuses.server_provided_all_packages_hash = b"\x00"
    elif name == "available_components":
        msg.available_components.hash = b"\x01"
    elif name == "connection_settings_status":
        msg.connection_settings_status.status = 1  # type: ignore[assignment]  # APPLIED
    else:
        raise ValueError(f"not a status field: {name}")


def heartbeat(uid: bytes, seq: int, capabilities: int = AgentCap.REPORTS_STATUS) -> AgentToServer:
    """A status-less message: uid, sequence number and capabilities only."""
    return AgentToServer(instance_uid=uid, sequence_num=seq, capabilities=capabilities)


def full_status(uid: bytes, seq: int, capabilities: int = AgentCap.REPORTS_STATUS) -> AgentToServer:
    """A message carrying full status for ``capabilities``."""
    msg = heartbeat(uid, seq, capabilities)
    for name in required_status_fields(capabilities):
        _fill_status_field(msg, name)
    return msg


def partial_status(uid: bytes, seq: int, capabilities: int, fields: list[str]) -> AgentToServer:
    """A message with exactly the status sub-messages in ``fields``."""
    msg = heartbeat(uid, seq, capabilities)
    for name in fields:
        _fill_status_field(msg, name)
    return msg


def goodbye(uid: bytes, seq: int, capabilities: int = AgentCap.REPORTS_STATUS) -> AgentToServer:
    """The last message before an agent disconnects."""
    msg = heartbeat(uid, seq, capabilities)
    msg.agent_disconnect.SetInParent()
    return msg
