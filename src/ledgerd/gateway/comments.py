"""The comments written in .proto files, looked up by the descriptor they document.

Runtime descriptors carry no comments; they live in the ``SourceCodeInfo`` of a descriptor
set compiled with ``--include_source_info``. A location there is addressed by a path of field
numbers and indexes into ``FileDescriptorProto`` (``[4, 3, 2, 1]`` = message 3, its field 1);
this module walks the file protos once, pairing those paths with full names.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import TypeAlias

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import (
    Descriptor,
    EnumDescriptor,
    EnumValueDescriptor,
    FieldDescriptor,
    FileDescriptor,
    MethodDescriptor,
    OneofDescriptor,
    ServiceDescriptor,
)

# Field numbers in descriptor.proto, the vocabulary of SourceCodeInfo paths.
_FILE_MESSAGE, _FILE_ENUM, _FILE_SERVICE, _FILE_SYNTAX = 4, 5, 6, 12
_MESSAGE_FIELD, _MESSAGE_NESTED, _MESSAGE_ENUM, _MESSAGE_ONEOF = 2, 3, 4, 8
_ENUM_VALUE = 2
_SERVICE_METHOD = 2

_SENTENCE_END = re.compile(r"(?<=[.!?])\s")

Documented: TypeAlias = (
    Descriptor
    | EnumDescriptor
    | EnumValueDescriptor
    | FieldDescriptor
    | FileDescriptor
    | MethodDescriptor
    | OneofDescriptor
    | ServiceDescriptor
)


class CommentIndex:
    """Comments by element; an element without one reads as the empty string."""

    def __init__(self, comments: Mapping[str, str] | None = None) -> None:
        self._comments: Mapping[str, str] = MappingProxyType(dict(comments or {}))

    @classmethod
    def from_descriptor_set(cls, descriptor_set: descriptor_pb2.FileDescriptorSet) -> CommentIndex:
        comments: dict[str, str] = {}
        for file in descriptor_set.file:
            locations = {
                tuple(location.path): location for location in file.source_code_info.location
            }
            for key, path in _elements(file):
                location = locations.get(path)
                if location is None:
                    continue
                text = _clean(location.leading_comments or location.trailing_comments)
                if text:
                    comments[key] = text
        return cls(comments)

    def of(self, element: Documented) -> str:
        """The element's comment; for a file, the comment above its ``syntax`` line."""
        return self._comments.get(_key(element), "")


def summary(comment: str) -> str:
    """The comment's first sentence (of its first paragraph), on one line."""
    paragraph = " ".join(comment.split("\n\n", 1)[0].split())
    return _SENTENCE_END.split(paragraph, maxsplit=1)[0]


def _key(element: Documented) -> str:
    if isinstance(element, FileDescriptor):
        return element.name  # contains a "/" or ".proto", so never a message's full name
    if isinstance(element, EnumValueDescriptor):
        # Enum values are scoped beside their enum; key them under it to stay unambiguous.
        return f"{element.type.full_name}.{element.name}"
    return element.full_name


def _elements(file: descriptor_pb2.FileDescriptorProto) -> Iterator[tuple[str, tuple[int, ...]]]:
    """(comment key, SourceCodeInfo path) for every element of ``file`` that may have one."""
    yield file.name, (_FILE_SYNTAX,)
    scope = file.package
    for index, message in enumerate(file.message_type):
        yield from _message_elements(message, _join(scope, message.name), (_FILE_MESSAGE, index))
    for index, enum in enumerate(file.enum_type):
        yield from _enum_elements(enum, _join(scope, enum.name), (_FILE_ENUM, index))
    for index, service in enumerate(file.service):
        name = _join(scope, service.name)
        yield name, (_FILE_SERVICE, index)
        for position, method in enumerate(service.method):
            yield f"{name}.{method.name}", (_FILE_SERVICE, index, _SERVICE_METHOD, position)


def _message_elements(
    message: descriptor_pb2.DescriptorProto, name: str, path: tuple[int, ...]
) -> Iterator[tuple[str, tuple[int, ...]]]:
    yield name, path
    for index, field in enumerate(message.field):
        yield f"{name}.{field.name}", (*path, _MESSAGE_FIELD, index)
    for index, oneof in enumerate(message.oneof_decl):
        yield f"{name}.{oneof.name}", (*path, _MESSAGE_ONEOF, index)
    for index, nested in enumerate(message.nested_type):
        yield from _message_elements(
            nested, f"{name}.{nested.name}", (*path, _MESSAGE_NESTED, index)
        )
    for index, enum in enumerate(message.enum_type):
        yield from _enum_elements(enum, f"{name}.{enum.name}", (*path, _MESSAGE_ENUM, index))


def _enum_elements(
    enum: descriptor_pb2.EnumDescriptorProto, name: str, path: tuple[int, ...]
) -> Iterator[tuple[str, tuple[int, ...]]]:
    yield name, path
    for index, value in enumerate(enum.value):
        yield f"{name}.{value.name}", (*path, _ENUM_VALUE, index)


def _join(scope: str, name: str) -> str:
    return f"{scope}.{name}" if scope else name


def _clean(comment: str) -> str:
    # protoc keeps what follows "//" verbatim, so every line starts with the space after it.
    return textwrap.dedent(comment).strip()
