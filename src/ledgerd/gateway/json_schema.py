"""The proto3 JSON mapping, written down as JSON Schema (2020-12, the dialect of OpenAPI 3.1).

Requests and responses get separate schemas, because the mapping is asymmetric: a parser
accepts more than a printer produces. A 64-bit integer is printed as a string but may be sent
as a string or a number; a request object is closed (the gateway rejects unknown fields) and
has required fields, while a response object stays open so that adding a field to the .proto
breaks no client that validates responses. Message and enum schemas therefore come in two
named variants: ``Account`` (what the server sends) and ``Account-Input`` (what it accepts);
the OpenAPI document gives a message only requests carry its proto name, without the suffix.
Well-known types (Timestamp, Duration, wrappers, ...) are inlined in their JSON form.

Input schemas are exact: they admit what the gateway and the server accept, no more, no less.
Integers and timestamps are spelled as :mod:`ledgerd.gateway.json_forms` says (the gateway
refuses other spellings), no field is nullable (the gateway refuses null), and a field that
follows one of the kernel's rules (given per field by the caller, see
:mod:`ledgerd.gateway.constraints`) carries that rule's pattern, bounds and lengths.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from typing import Any, TypeAlias

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from ledgerd.gateway.comments import CommentIndex
from ledgerd.gateway.constraints import constrained, integer_schema, message_rule_schema
from ledgerd.gateway.descriptors import (
    WRAPPER_TYPES,
    is_input_only,
    is_map,
    is_output_only,
    is_required,
    map_entry,
)
from ledgerd.gateway.json_forms import TIMESTAMP_TEXT
from ledgerd.kernel.rules import ApiRules

# A JSON document under construction. Its values are nested dicts, lists, strings, numbers
# and bools; a precise recursive type would make every reader cast, for no safety gained.
JsonObject: TypeAlias = dict[str, Any]

SCHEMA_REF_PREFIX = "#/components/schemas/"
INPUT_SUFFIX = "-Input"


class Direction(enum.Enum):
    INPUT = "input"  # a request, as the gateway parses it
    OUTPUT = "output"  # a response, as the gateway prints it


_Type = FieldDescriptor  # for its TYPE_* constants
_INT32 = (-(2**31), 2**31 - 1, "int32")
_UINT32 = (0, 2**32 - 1, "uint32")
_INT64 = (-(2**63), 2**63 - 1, "int64")
_UINT64 = (0, 2**64 - 1, "uint64")
_INTEGER_RANGES: dict[int, tuple[int, int, str]] = {
    _Type.TYPE_INT32: _INT32,
    _Type.TYPE_SINT32: _INT32,
    _Type.TYPE_SFIXED32: _INT32,
    _Type.TYPE_UINT32: _UINT32,
    _Type.TYPE_FIXED32: _UINT32,
    _Type.TYPE_INT64: _INT64,
    _Type.TYPE_SINT64: _INT64,
    _Type.TYPE_SFIXED64: _INT64,
    _Type.TYPE_UINT64: _UINT64,
    _Type.TYPE_FIXED64: _UINT64,
}
# The mapping prints these as decimal strings: JSON numbers lose precision beyond 2^53.
_PRINTED_AS_TEXT: dict[int, str] = {
    _Type.TYPE_INT64: "^-?[0-9]{1,19}$",
    _Type.TYPE_SINT64: "^-?[0-9]{1,19}$",
    _Type.TYPE_SFIXED64: "^-?[0-9]{1,19}$",
    _Type.TYPE_UINT64: "^[0-9]{1,20}$",
    _Type.TYPE_FIXED64: "^[0-9]{1,20}$",
}
_FLOAT_FORMATS = {_Type.TYPE_FLOAT: "float", _Type.TYPE_DOUBLE: "double"}
_DURATION_PATTERN = r"^-?[0-9]+(\.[0-9]{1,9})?s$"


def scalar_schema(field_type: int, direction: Direction, *, in_url: bool = False) -> JsonObject:
    """One value of a non-message, non-enum field type.

    ``in_url``: a path or query parameter, where every value is text anyway, so an integer is
    simply an integer there rather than "string or integer".
    """
    if field_type in _INTEGER_RANGES:
        return _integer_schema(field_type, direction, in_url=in_url)
    if field_type in _FLOAT_FORMATS:
        # Numbers, or the three strings the mapping uses for what JSON cannot write.
        return {
            "type": ["number", "string"],
            "format": _FLOAT_FORMATS[field_type],
            "pattern": "^(NaN|-?Infinity)$",
        }
    if field_type == _Type.TYPE_BOOL:
        return {"type": "boolean"}
    if field_type == _Type.TYPE_BYTES:
        return {"type": "string", "contentEncoding": "base64"}
    return {"type": "string"}


def _integer_schema(field_type: int, direction: Direction, *, in_url: bool) -> JsonObject:
    low, high, number_format = _INTEGER_RANGES[field_type]
    if direction is Direction.INPUT:
        return integer_schema(low, high, number_format, in_url=in_url)
    if field_type in _PRINTED_AS_TEXT:
        return {"type": "string", "format": number_format, "pattern": _PRINTED_AS_TEXT[field_type]}
    return {"type": "integer", "format": number_format, "minimum": low, "maximum": high}


def _well_known_schema(message: Descriptor, direction: Direction, *, in_url: bool) -> JsonObject:
    """The JSON form of a well-known type, or an empty dict if ``message`` is not one."""
    name = message.full_name
    if name in WRAPPER_TYPES:
        return scalar_schema(message.fields_by_name["value"].type, direction, in_url=in_url)
    timestamp: JsonObject = {"type": "string", "format": "date-time"}
    if direction is Direction.INPUT:  # RFC 3339 as the gateway reads it (see json_forms)
        timestamp["pattern"] = TIMESTAMP_TEXT.pattern
    known: dict[str, JsonObject] = {
        "google.protobuf.Timestamp": timestamp,
        "google.protobuf.Duration": {"type": "string", "pattern": _DURATION_PATTERN},
        # Comma-separated field paths in lowerCamelCase.
        "google.protobuf.FieldMask": {"type": "string"},
        "google.protobuf.Struct": {"type": "object"},
        "google.protobuf.Value": {},  # any JSON value at all
        "google.protobuf.ListValue": {"type": "array"},
        "google.protobuf.Empty": {"type": "object", "maxProperties": 0},
        "google.protobuf.Any": {
            "type": "object",
            "properties": {"@type": {"type": "string"}},
            "required": ["@type"],
        },
    }
    return known.get(name, {})


class SchemaSet:
    """Builds the schemas of fields and messages, collecting the components they refer to."""

    def __init__(
        self,
        *,
        comments: CommentIndex,
        package: str,
        always_print_fields_with_no_presence: bool,
        rules: ApiRules | None = None,
    ) -> None:
        """``package``: names in it are shortened (``ledgerd.v1.Account`` → ``Account``).

        ``always_print_fields_with_no_presence`` says how the gateway prints responses (the
        json_format option of that name): when set, every field without presence tracking is
        always in a response, so output schemas can list those fields as required.

        ``rules`` are those the server checks requests by; input schemas state them.
        """
        self._rules = rules or ApiRules()
        self._comments = comments
        self._package = package
        self._always_print = always_print_fields_with_no_presence
        self._wanted: dict[str, tuple[Descriptor | EnumDescriptor, Direction]] = {}

    def component_name(self, element: Descriptor | EnumDescriptor, direction: Direction) -> str:
        name = element.full_name
        prefix = f"{self._package}."
        if self._package and name.startswith(prefix):
            name = name[len(prefix) :]
        return name + (INPUT_SUFFIX if direction is Direction.INPUT else "")

    def ref(self, element: Descriptor | EnumDescriptor, direction: Direction) -> JsonObject:
        name = self.component_name(element, direction)
        self._wanted[name] = (element, direction)
        return {"$ref": SCHEMA_REF_PREFIX + name}

    def components(self) -> dict[str, JsonObject]:
        """Every schema referred to so far (building one may refer to more), sorted by name."""
        built: dict[str, JsonObject] = {}
        while pending := [name for name in self._wanted if name not in built]:
            for name in pending:
                element, direction = self._wanted[name]
                if isinstance(element, EnumDescriptor):
                    schema = self._enum(element, direction)
                else:
                    schema = self.message(element, direction)
                # A message that travels both ways has two schemas (``Leg``, ``Leg-Input``);
                # the title gives both the proto's name, which is what documentation tools show.
                built[name] = {"title": name.removesuffix(INPUT_SUFFIX), **schema}
        return {name: built[name] for name in sorted(built)}

    def message(
        self, message: Descriptor, direction: Direction, *, exclude: Collection[str] = ()
    ) -> JsonObject:
        """The object schema of ``message``, leaving out the fields named in ``exclude``."""
        schema: JsonObject = {"type": "object"}
        if comment := self._comments.of(message):
            schema["description"] = comment
        properties: JsonObject = {}
        required: list[str] = []
        for field in message.fields:
            if field.name in exclude or not _travels(field, direction):
                continue
            properties[field.name] = self.field(field, direction)
            if self._is_required(field, direction):
                required.append(field.name)
        if properties:
            schema["properties"] = properties
        if required:
            schema["required"] = required
        if direction is Direction.INPUT:
            schema["additionalProperties"] = False
        constraints = self._oneof_constraints(message, properties)
        if direction is Direction.INPUT:
            constraints += [
                message_rule_schema(message, rule)
                for rule in self._rules.messages.get(message.full_name, ())
            ]
        if constraints:
            schema["allOf"] = constraints
        return schema

    def field(self, field: FieldDescriptor, direction: Direction) -> JsonObject:
        """A property's schema: the field's value, list or map, with its comment."""
        schema = self._shape(field, direction)
        if direction is Direction.INPUT:
            schema = self._input_constraints(field, schema, in_url=False)
        if comment := self._comments.of(field):
            return {"description": comment, **schema}
        return schema

    def parameter(self, field: FieldDescriptor) -> JsonObject:
        """The schema of a path or query parameter bound to ``field``."""
        schema = self._shape(field, Direction.INPUT, in_url=True)
        return self._input_constraints(field, schema, in_url=True)

    def _input_constraints(
        self, field: FieldDescriptor, schema: JsonObject, *, in_url: bool
    ) -> JsonObject:
        if is_required(field):
            schema.update(_non_default(field, schema))
        rule = self._rules.fields.get(field.full_name)
        return schema if rule is None else constrained(schema, field, rule, in_url=in_url)

    def _shape(
        self, field: FieldDescriptor, direction: Direction, *, in_url: bool = False
    ) -> JsonObject:
        if (entry := map_entry(field)) is not None:
            key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
            schema: JsonObject = {
                "type": "object",
                "additionalProperties": self.value(value, direction),
            }
            if names := _map_key_names(key):
                schema["propertyNames"] = names
            return schema
        if field.is_repeated:
            return {"type": "array", "items": self.value(field, direction, in_url=in_url)}
        return self.value(field, direction, in_url=in_url)

    def value(
        self, field: FieldDescriptor, direction: Direction, *, in_url: bool = False
    ) -> JsonObject:
        """One value of the field's type (an element, for a repeated field)."""
        if (message := field.message_type) is not None:
            return _well_known_schema(message, direction, in_url=in_url) or self.ref(
                message, direction
            )
        if (enum_type := field.enum_type) is not None:
            if enum_type.full_name == "google.protobuf.NullValue":
                return {"type": "null"}
            return self.ref(enum_type, direction)
        return scalar_schema(field.type, direction, in_url=in_url)

    def _is_required(self, field: FieldDescriptor, direction: Direction) -> bool:
        if direction is Direction.INPUT:
            return is_required(field)
        return self._always_print and not field.has_presence

    def _enum(self, enum_type: EnumDescriptor, direction: Direction) -> JsonObject:
        values = [
            value
            for value in enum_type.values
            if direction is Direction.OUTPUT or not _means_unset(value.number, value.name)
        ] or list(enum_type.values)
        if direction is Direction.OUTPUT:  # aliases share a number; the printer uses the first
            first = {value.number: value for value in reversed(values)}
            values = [value for value in values if first[value.number] is value]
        schema: JsonObject = {"type": "string", "enum": [value.name for value in values]}
        # One line per commented value, after the enum's own comment (if any).
        lines = [self._comments.of(enum_type)] + [
            f"- `{value.name}`: {' '.join(self._comments.of(value).split())}"
            for value in values
            if self._comments.of(value)
        ]
        lines = [line for line in lines if line]
        if lines:
            schema["description"] = "\n".join(lines)
        return schema

    def _oneof_constraints(self, message: Descriptor, properties: JsonObject) -> list[JsonObject]:
        constraints: list[JsonObject] = []
        for oneof in message.oneofs:
            members = [field.name for field in oneof.fields if field.name in properties]
            if len(members) < 2:  # noqa: PLR2004 - proto3 `optional` is a oneof of one
                continue
            pairs = [[a, b] for index, a in enumerate(members) for b in members[index + 1 :]]
            listed = ", ".join(f"`{member}`" for member in members)
            constraints.append(
                {
                    "description": f"oneof `{oneof.name}`: at most one of {listed}",
                    "not": {"anyOf": [{"required": pair} for pair in pairs]},
                }
            )
        return constraints


def _travels(field: FieldDescriptor, direction: Direction) -> bool:
    """Whether the field is part of a message going this way (see field_behavior)."""
    if direction is Direction.INPUT:
        return not is_output_only(field)
    return not is_input_only(field)


def _means_unset(number: int, name: str) -> bool:
    # In proto3 the zero value is indistinguishable from "not set"; by the style guide it is
    # FOO_UNSPECIFIED. Requests need not (and should not) name it.
    return number == 0 and (name == "UNSPECIFIED" or name.endswith("_UNSPECIFIED"))


def _non_default(field: FieldDescriptor, schema: JsonObject) -> JsonObject:
    """Extra constraints a REQUIRED field implies where proto3 JSON can express them.

    A field set to its default value is the same as an absent one in proto3, so a required
    string, list or map must not be empty. (Numbers and bools are left alone: excluding zero
    from a "string or integer" union would cost more clarity than it buys.)
    """
    if is_map(field):
        return {"minProperties": 1}
    if field.is_repeated:
        return {"minItems": 1}
    if field.type in {_Type.TYPE_STRING, _Type.TYPE_BYTES} and schema.get("type") == "string":
        return {"minLength": 1}
    return {}


def _map_key_names(key: FieldDescriptor) -> JsonObject:
    """Map keys are always JSON strings; constrain them when the proto key is not a string."""
    if key.type == _Type.TYPE_BOOL:
        return {"enum": ["true", "false"]}
    if key.type in _INTEGER_RANGES:
        unsigned = key.type in {
            _Type.TYPE_UINT32,
            _Type.TYPE_FIXED32,
            _Type.TYPE_UINT64,
            _Type.TYPE_FIXED64,
        }
        return {"pattern": "^[0-9]+$" if unsigned else "^-?[0-9]+$"}
    return {}
