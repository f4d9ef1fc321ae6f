"""Descriptor-level comparison of two copies of the OpAMP schema.

The reference ("published") copy must be contained in ours: every message,
field and enum value it declares has to exist in our schema with identical
wire-relevant properties. Ours may be a superset, but every extra element
has to be declared up front so that additions (and removals of additions)
are deliberate.

Elements are named relative to their proto package, so that
``opamp.proto.AgentToServer`` (published) and ``opamp.proto.v1.AgentToServer``
(ours) both become ``AgentToServer``; nested types keep their parent, e.g.
``AvailableComponents.ComponentsEntry``.

Names used for extras (and in the difference strings):

* ``message Name`` / ``enum Name`` -- a whole message or enum type,
* ``field Message.field`` -- one field of a message present on both sides,
* ``enum value Enum.VALUE_NAME`` -- one value of an enum present on both sides.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor, FileDescriptor
from google.protobuf.descriptor_pb2 import FieldDescriptorProto


@dataclass(frozen=True)
class FieldFacts:
    """The properties of a field that must match between the two schemas."""

    number: int
    type: str
    label: str
    type_ref: str | None
    oneof: str | None
    has_presence: bool

    def describe(self) -> str:
        ref = f" {self.type_ref}" if self.type_ref else ""
        oneof = f" in oneof {self.oneof}" if self.oneof else ""
        return f"{self.label} {self.type}{ref} = {self.number}{oneof}"


@dataclass(frozen=True)
class SchemaIndex:
    """Messages (with their fields) and enums (with their values) by relative name."""

    messages: dict[str, tuple[bool, dict[str, FieldFacts]]]
    enums: dict[str, dict[str, int]]


def _relative_name(full_name: str, package: str) -> str:
    prefix = f"{package}." if package else ""
    return full_name[len(prefix) :] if full_name.startswith(prefix) else full_name


def _label(field: FieldDescriptor) -> str:
    if field.is_repeated:
        return "repeated"
    if field.is_required:
        return "required"
    return "optional"


def _walk_messages(messages: Iterable[Descriptor]) -> Iterator[Descriptor]:
    for message in messages:
        yield message
        yield from _walk_messages(message.nested_types)


def _walk_enums(files: Iterable[FileDescriptor]) -> Iterator[EnumDescriptor]:
    for file in files:
        yield from file.enum_types_by_name.values()
        for message in _walk_messages(file.message_types_by_name.values()):
            yield from message.enum_types


def index_schema(files: Iterable[FileDescriptor]) -> SchemaIndex:
    """Flatten the given files' messages and enums into a :class:`SchemaIndex`."""
    file_list = list(files)
    messages: dict[str, tuple[bool, dict[str, FieldFacts]]] = {}
    enums: dict[str, dict[str, int]] = {}
    for file in file_list:
        package = file.package
        for message in _walk_messages(file.message_types_by_name.values()):
            fields: dict[str, FieldFacts] = {}
            for field in message.fields:
                ref_desc = field.message_type or field.enum_type
                fields[field.name] = FieldFacts(
                    number=field.number,
                    type=FieldDescriptorProto.Type.Name(
                        FieldDescriptorProto.Type.ValueType(field.type)
                    ),
                    label=_label(field),
                    type_ref=(
                        _relative_name(ref_desc.full_name, ref_desc.file.package)
                        if ref_desc is not None
                        else None
                    ),
                    oneof=field.containing_oneof.name if field.containing_oneof else None,
                    has_presence=field.has_presence,
                )
            is_map_entry = bool(message.GetOptions().map_entry)
            messages[_relative_name(message.full_name, package)] = (is_map_entry, fields)
    for enum in _walk_enums(file_list):
        name = _relative_name(enum.full_name, enum.file.package)
        enums[name] = {value.name: value.number for value in enum.values}
    return SchemaIndex(messages=messages, enums=enums)


def _missing_and_mismatched(published: SchemaIndex, ours: SchemaIndex) -> list[str]:
    diffs: list[str] = []
    for msg_name, (pub_map_entry, pub_fields) in sorted(published.messages.items()):
        if msg_name not in ours.messages:
            diffs.append(f"message {msg_name}: missing from our schema")
            continue
        our_map_entry, our_fields = ours.messages[msg_name]
        if pub_map_entry != our_map_entry:
            diffs.append(
                f"message {msg_name}: map_entry is {pub_map_entry} in the published schema "
                f"but {our_map_entry} in ours"
            )
        for field_name, pub in sorted(pub_fields.items()):
            qualified = f"{msg_name}.{field_name}"
            our = our_fields.get(field_name)
            if our is None:
                diffs.append(f"field {qualified}: missing from our schema ({pub.describe()})")
                continue
            if pub == our:
                continue
            details = [
                f"{attr} {getattr(pub, attr)!r} (published) != {getattr(our, attr)!r} (ours)"
                for attr in ("number", "type", "label", "type_ref", "oneof", "has_presence")
                if getattr(pub, attr) != getattr(our, attr)
            ]
            diffs.append(f"field {qualified}: " + "; ".join(details))
    for enum_name, pub_values in sorted(published.enums.items()):
        our_values = ours.enums.get(enum_name)
        if our_values is None:
            diffs.append(f"enum {enum_name}: missing from our schema")
            continue
        for value_name, pub_number in sorted(pub_values.items()):
            qualified = f"{enum_name}.{value_name}"
            if value_name not in our_values:
                diffs.append(f"enum value {qualified}: missing from our schema (= {pub_number})")
            elif our_values[value_name] != pub_number:
                diffs.append(
                    f"enum value {qualified}: number {pub_number} (published) "
                    f"!= {our_values[value_name]} (ours)"
                )
    return diffs


def find_extras(published: SchemaIndex, ours: SchemaIndex) -> set[str]:
    """Name every element of ``ours`` that has no counterpart in ``published``.

    Contents of an extra message or enum (its fields, values and nested
    types) are covered by the entry for the message/enum itself.
    """
    extras: set[str] = set()
    extra_messages = {name for name in ours.messages if name not in published.messages}
    for name in extra_messages:
        parent = name.rpartition(".")[0]
        if parent not in extra_messages:
            extras.add(f"message {name}")
    for msg_name, (_, our_fields) in ours.messages.items():
        if msg_name in extra_messages:
            continue
        pub_fields = published.messages[msg_name][1]
        extras.update(
            f"field {msg_name}.{field}" for field in our_fields if field not in pub_fields
        )
    for enum_name, our_values in ours.enums.items():
        parent = enum_name.rpartition(".")[0]
        if parent in extra_messages:
            continue
        pub_values = published.enums.get(enum_name)
        if pub_values is None:
            extras.add(f"enum {enum_name}")
            continue
        extras.update(
            f"enum value {enum_name}.{value}" for value in our_values if value not in pub_values
        )
    return extras


def compare_schemas(
    published: Iterable[FileDescriptor],
    ours: Iterable[FileDescriptor],
    expected_extras: Collection[str] = (),
) -> list[str]:
    """Return human-readable differences between two schemas (empty if compatible).

    Reported are: published messages, fields, enums and enum values that are
    missing from ours or differ in number, type, label, referenced type,
    oneof membership or presence; extras of ours that are not in
    ``expected_extras``; and entries of ``expected_extras`` that ours no
    longer has (or that the published schema has too).
    """
    pub_index = index_schema(published)
    our_index = index_schema(ours)
    diffs = _missing_and_mismatched(pub_index, our_index)
    extras = find_extras(pub_index, our_index)
    expected = set(expected_extras)
    diffs.extend(
        f"{extra}: only in our schema and not listed as an expected extra"
        for extra in sorted(extras - expected)
    )
    diffs.extend(
        f"{extra}: listed as an expected extra but is not an extra of our schema"
        for extra in sorted(expected - extras)
    )
    return diffs
