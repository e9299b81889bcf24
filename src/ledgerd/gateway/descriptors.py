"""Small reflection helpers over protobuf descriptors, and the packaged descriptor set.

``make generate`` writes ``ledgerd/v1/descriptor_set.binpb``: every file under proto/ with its
comments (source info), plus the files it imports. The gateway reads comments from it for the
OpenAPI document; a fresh descriptor pool built from it describes the API without importing
the generated modules (which is how ``tools/generate.py`` documents freshly generated code).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources

from google.api import annotations_pb2, field_behavior_pb2, http_pb2
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import (
    Descriptor,
    FieldDescriptor,
    MethodDescriptor,
    ServiceDescriptor,
)
from google.protobuf.message import Message

DESCRIPTOR_SET_PACKAGE = "ledgerd.v1"
DESCRIPTOR_SET_NAME = "descriptor_set.binpb"


def load_descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    """The descriptor set shipped inside the ledgerd package."""
    data = resources.files(DESCRIPTOR_SET_PACKAGE).joinpath(DESCRIPTOR_SET_NAME).read_bytes()
    return descriptor_pb2.FileDescriptorSet.FromString(data)


def services_in(descriptor_set: descriptor_pb2.FileDescriptorSet) -> tuple[ServiceDescriptor, ...]:
    """Every service the set's files define, in file and declaration order.

    The files go into a private pool, so this works beside (and without) the generated modules
    that register the same names in the default pool.
    """
    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_set.file:
        pool.Add(file)
    return tuple(
        pool.FindServiceByName(f"{file.package}.{service.name}" if file.package else service.name)
        for file in descriptor_set.file
        for service in file.service
    )


def _extension_value(options: Message, extension: FieldDescriptor) -> object:
    # ListFields() rather than options.Extensions[...]: it is typed, and it finds the extension
    # by name whichever pool the options came from.
    for field, value in options.ListFields():
        if field.full_name == extension.full_name:
            return value
    return None


def http_rule_of(method: MethodDescriptor) -> http_pb2.HttpRule | None:
    """The method's ``google.api.http`` option, if it has one."""
    value = _extension_value(method.GetOptions(), annotations_pb2.http)
    return value if isinstance(value, http_pb2.HttpRule) else None


def _behaviors(field: FieldDescriptor) -> frozenset[int]:
    value = _extension_value(field.GetOptions(), field_behavior_pb2.field_behavior)
    if not isinstance(value, Sequence):
        return frozenset()
    return frozenset(int(behavior) for behavior in value)


def is_required(field: FieldDescriptor) -> bool:
    """Whether the field is annotated ``(google.api.field_behavior) = REQUIRED``."""
    return field_behavior_pb2.REQUIRED in _behaviors(field)


def is_output_only(field: FieldDescriptor) -> bool:
    return field_behavior_pb2.OUTPUT_ONLY in _behaviors(field)


def is_input_only(field: FieldDescriptor) -> bool:
    return field_behavior_pb2.INPUT_ONLY in _behaviors(field)


def map_entry(field: FieldDescriptor) -> Descriptor | None:
    """The synthetic ``key``/``value`` entry message of a map field; None for other fields."""
    entry = field.message_type
    if field.is_repeated and entry is not None and entry.GetOptions().map_entry:
        return entry
    return None


def is_map(field: FieldDescriptor) -> bool:
    return map_entry(field) is not None


# Well-known types whose proto3 JSON form is a single string, number or bool rather than an
# object; like scalars, they can be sent as a query parameter.
WRAPPER_TYPES = frozenset(
    f"google.protobuf.{name}"
    for name in (
        "BoolValue",
        "BytesValue",
        "DoubleValue",
        "FloatValue",
        "Int32Value",
        "Int64Value",
        "StringValue",
        "UInt32Value",
        "UInt64Value",
    )
)
JSON_SCALAR_MESSAGES = WRAPPER_TYPES | {
    "google.protobuf.Duration",
    "google.protobuf.FieldMask",
    "google.protobuf.Timestamp",
}


def is_json_scalar(field: FieldDescriptor) -> bool:
    """Whether one value of the field is a JSON string, number or bool (not an object)."""
    message = field.message_type
    return message is None or message.full_name in JSON_SCALAR_MESSAGES


def is_well_known(message: Descriptor) -> bool:
    """Whether the message is one of protobuf's well-known types, which JSON maps specially."""
    return message.file.package == "google.protobuf"
