"""Wire compatibility of our OpAMP schema with the independently published one.

The reference is the generated code shipped in the PyPI package
``opentelemetry-opamp-client`` (``opentelemetry._opamp.proto``). Every message,
field and enum value there must exist identically in our schema
(``protos/opamp/v1``, generated into ``conformance.pb.opamp.v1``). Ours is a
newer revision of the spec, so it may have more; each extra is listed in
``EXPECTED_EXTRAS`` below.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from google.protobuf.descriptor_pb2 import (
    DescriptorProto,
    EnumValueDescriptorProto,
    FieldDescriptorProto,
    FileDescriptorProto,
)

from conformance.pb.opamp.v1 import anyvalue_pb2, opamp_pb2
from tests.schema_compare import compare_schemas

_SKIP_REASON = (
    "opentelemetry-opamp-client is not installed (install the dev extras: pip install -e '.[dev]')"
)
published_opamp: ModuleType = pytest.importorskip(
    "opentelemetry._opamp.proto.opamp_pb2", reason=_SKIP_REASON
)
published_anyvalue: ModuleType = pytest.importorskip(
    "opentelemetry._opamp.proto.anyvalue_pb2", reason=_SKIP_REASON
)

# Everything our schema has beyond the published copy (opamp-spec additions
# after the version the published package was generated from). Keep exact:
# the compatibility test fails on unlisted extras and on listed ones that are
# gone.
EXPECTED_EXTRAS: frozenset[str] = frozenset(
    {
        # Agent reports the outcome of offered connection settings.
        "field AgentToServer.connection_settings_status",
        "message ConnectionSettingsStatus",
        "enum ConnectionSettingsStatuses",
        "enum value AgentCapabilities.AgentCapabilities_ReportsConnectionSettingsStatus",
        # Attributes on component health.
        "field ComponentHealth.attributes",
        # Role of a config file (added with the AgentConfigObject rename).
        "field AgentConfigFile.role",
        # TLS and proxy settings for offered connections.
        "message TLSConnectionSettings",
        "message ProxyConnectionSettings",
        "field OpAMPConnectionSettings.tls",
        "field OpAMPConnectionSettings.proxy",
        "field TelemetryConnectionSettings.tls",
        "field TelemetryConnectionSettings.proxy",
        "field OtherConnectionSettings.tls",
        "field OtherConnectionSettings.proxy",
    }
)


def _published_files() -> list[FileDescriptor]:
    return [published_anyvalue.DESCRIPTOR, published_opamp.DESCRIPTOR]


def _our_files() -> list[FileDescriptor]:
    return [anyvalue_pb2.DESCRIPTOR, opamp_pb2.DESCRIPTOR]


def test_published_schema_is_contained_in_ours() -> None:
    diffs = compare_schemas(_published_files(), _our_files(), EXPECTED_EXTRAS)
    assert not diffs, "schema differences against opentelemetry-opamp-client:\n" + "\n".join(diffs)


def test_both_schemas_load_in_one_process_and_interoperate() -> None:
    ours = opamp_pb2.DESCRIPTOR
    published: FileDescriptor = published_opamp.DESCRIPTOR
    assert (ours.name, ours.package) == ("opamp/v1/opamp.proto", "opamp.proto.v1")
    assert published.package != ours.package
    assert published.name != ours.name

    message = opamp_pb2.AgentToServer(
        instance_uid=b"\x01" * 16,
        sequence_num=7,
        capabilities=opamp_pb2.AgentCapabilities_ReportsStatus,
        health=opamp_pb2.ComponentHealth(healthy=True, start_time_unix_nano=123),
        agent_description=opamp_pb2.AgentDescription(
            identifying_attributes=[
                anyvalue_pb2.KeyValue(
                    key="service.name", value=anyvalue_pb2.AnyValue(string_value="x")
                )
            ]
        ),
    )
    wire = message.SerializeToString()
    decoded = published_opamp.AgentToServer.FromString(wire)
    assert decoded.SerializeToString(deterministic=True) == message.SerializeToString(
        deterministic=True
    )


def test_unlisted_extra_is_reported() -> None:
    dropped = "field ComponentHealth.attributes"
    diffs = compare_schemas(_published_files(), _our_files(), EXPECTED_EXTRAS - {dropped})
    assert diffs == [f"{dropped}: only in our schema and not listed as an expected extra"]


def test_listed_extra_that_disappeared_is_reported() -> None:
    bogus = "field AgentToServer.no_such_field"
    diffs = compare_schemas(_published_files(), _our_files(), EXPECTED_EXTRAS | {bogus})
    assert diffs == [f"{bogus}: listed as an expected extra but is not an extra of our schema"]


# --- the comparison must catch incompatible changes -------------------------


def _message(file: FileDescriptorProto, name: str) -> DescriptorProto:
    return next(m for m in file.message_type if m.name == name)


def _field(file: FileDescriptorProto, message: str, name: str) -> FieldDescriptorProto:
    return next(f for f in _message(file, message).field if f.name == name)


def _enum_value(file: FileDescriptorProto, enum: str, name: str) -> EnumValueDescriptorProto:
    enum_proto = next(e for e in file.enum_type if e.name == enum)
    return next(v for v in enum_proto.value if v.name == name)


def _renumber_sequence_num(file: FileDescriptorProto) -> None:
    _field(file, "AgentToServer", "sequence_num").number = 20


def _renumber_enum_value(file: FileDescriptorProto) -> None:
    _enum_value(file, "AgentCapabilities", "AgentCapabilities_ReportsStatus").number = 0x40000000


def _retype_capabilities(file: FileDescriptorProto) -> None:
    _field(file, "ServerToAgent", "capabilities").type = FieldDescriptorProto.TYPE_FIXED64


def _repoint_health(file: FileDescriptorProto) -> None:
    _field(file, "AgentToServer", "health").type_name = ".opamp.proto.v1.AgentDescription"


def _unrepeat_custom_capabilities(file: FileDescriptorProto) -> None:
    _field(file, "CustomCapabilities", "capabilities").label = FieldDescriptorProto.LABEL_OPTIONAL


def _drop_flags(file: FileDescriptorProto) -> None:
    message = _message(file, "AgentToServer")
    message.field.remove(_field(file, "AgentToServer", "flags"))


def _mutated_schema(mutate: Callable[[FileDescriptorProto], None]) -> list[FileDescriptor]:
    """Our schema, with ``mutate`` applied to opamp.proto, in a private pool."""
    anyvalue_proto = FileDescriptorProto()
    anyvalue_pb2.DESCRIPTOR.CopyToProto(anyvalue_proto)
    opamp_proto = FileDescriptorProto()
    opamp_pb2.DESCRIPTOR.CopyToProto(opamp_proto)
    mutate(opamp_proto)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(anyvalue_proto)
    pool.Add(opamp_proto)
    return [pool.FindFileByName(anyvalue_proto.name), pool.FindFileByName(opamp_proto.name)]


def test_unmutated_copy_is_compatible() -> None:
    diffs = compare_schemas(_published_files(), _mutated_schema(lambda _: None), EXPECTED_EXTRAS)
    assert diffs == []


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(
            _renumber_sequence_num,
            "field AgentToServer.sequence_num: number 2 (published) != 20 (ours)",
            id="field-number",
        ),
        pytest.param(
            _renumber_enum_value,
            "enum value AgentCapabilities.AgentCapabilities_ReportsStatus: "
            "number 1 (published) != 1073741824 (ours)",
            id="enum-value-number",
        ),
        pytest.param(
            _retype_capabilities,
            "field ServerToAgent.capabilities: "
            "type 'TYPE_UINT64' (published) != 'TYPE_FIXED64' (ours)",
            id="field-type",
        ),
        pytest.param(
            _repoint_health,
            "field AgentToServer.health: "
            "type_ref 'ComponentHealth' (published) != 'AgentDescription' (ours)",
            id="referenced-type",
        ),
        pytest.param(
            _unrepeat_custom_capabilities,
            "field CustomCapabilities.capabilities: "
            "label 'repeated' (published) != 'optional' (ours)",
            id="field-label",
        ),
        pytest.param(
            _drop_flags,
            "field AgentToServer.flags: missing from our schema (optional TYPE_UINT64 = 10)",
            id="missing-field",
        ),
    ],
)
def test_comparison_detects_incompatible_change(
    mutate: Callable[[FileDescriptorProto], None], expected: str
) -> None:
    diffs = compare_schemas(_published_files(), _mutated_schema(mutate), EXPECTED_EXTRAS)
    assert diffs == [expected]
