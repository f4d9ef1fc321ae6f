"""One-line descriptions of messages and exchanges, for evidence and failure reports."""

from __future__ import annotations

from conformance.model.fullstate import present_status_fields
from conformance.wire import (
    AgentCap,
    AgentToServer,
    ServerCap,
    ServerToAgent,
    cap_names,
    has_field,
)

_SERVER_FIELDS = (
    "error_response",
    "remote_config",
    "connection_settings",
    "packages_available",
    "agent_identification",
    "command",
    "custom_capabilities",
    "custom_message",
)


def short_uid(uid: bytes) -> str:
    """The first 4 bytes of a uid as hex, enough to tell agents apart."""
    return uid[:4].hex() if uid else "<none>"


def describe_agent_message(msg: AgentToServer) -> str:
    """``uid seq caps fields`` of one AgentToServer."""
    parts = [f"uid={short_uid(msg.instance_uid)}", f"seq={msg.sequence_num}"]
    parts.append("caps=" + "|".join(cap_names(msg.capabilities, AgentCap) or ["0"]))
    fields = present_status_fields(msg)
    if msg.HasField("agent_disconnect"):
        fields.append("agent_disconnect")
    parts.append("fields=[" + ",".join(fields) + "]")
    if msg.flags:
        parts.append(f"flags={msg.flags:#x}")
    return " ".join(parts)


def describe_server_message(msg: ServerToAgent) -> str:
    """``uid flags caps fields`` of one ServerToAgent."""
    parts = [f"uid={short_uid(msg.instance_uid)}", f"flags={msg.flags:#x}"]
    if msg.capabilities:
        parts.append("caps=" + "|".join(cap_names(msg.capabilities, ServerCap)))
    present = [name for name in _SERVER_FIELDS if has_field(msg, name)]
    if present:
        parts.append("fields=[" + ",".join(present) + "]")
    if msg.HasField("error_response"):
        err = msg.error_response
        parts.append(f"error=({err.type}, {err.error_message!r})")
    return " ".join(parts)
