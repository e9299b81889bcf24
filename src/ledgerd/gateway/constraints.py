"""JSON Schema for integer ranges and for the kernel's rules, as a request field meets them.

A rule (:mod:`ledgerd.kernel.rules`) says what a value must be; where it sits in a proto3
request changes how JSON Schema has to say it:

- an integer in a body may be a JSON number or a decimal string (the proto3 JSON mapping), so
  its range is stated twice: ``minimum``/``maximum`` for the number, a digit pattern for the
  string (:func:`ledgerd.gateway.json_forms.decimal_range_pattern`); in a URL it is text that
  reads as an integer, and the bounds say it all;
- a field without presence that is not required may hold its zero value, which proto3 cannot
  tell from "not set": a page size of 0 means the default and an empty idempotency key the
  derived one, so 0 and "" are admitted beside the rule;
- a list or map rule bounds the container and constrains its elements;
- a rule across a message's fields speaks of fields being "set", not holding their zero
  value: ``true``, a number or digit string other than zero, a non-empty string or list.
"""

from __future__ import annotations

import re
from typing import Any, TypeAlias

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from ledgerd.gateway.descriptors import is_required
from ledgerd.gateway.json_forms import decimal_range_pattern
from ledgerd.kernel.rules import (
    AtMostOneSet,
    FieldRule,
    IntegerRule,
    ListRule,
    MapRule,
    MessageRule,
    SetOnlyWith,
    TextRule,
)

JsonObject: TypeAlias = dict[str, Any]


def integer_schema(low: int, high: int, number_format: str, *, in_url: bool) -> JsonObject:
    """An integer from ``low`` to ``high`` as a request may carry it (see the module doc)."""
    if in_url:
        return {"type": "integer", "format": number_format, "minimum": low, "maximum": high}
    # `pattern` constrains only the string form, the bounds only the number form.
    return {
        "type": ["string", "integer"],
        "format": number_format,
        "pattern": decimal_range_pattern(low, high),
        "minimum": low,
        "maximum": high,
    }


def constrained(
    schema: JsonObject, field: FieldDescriptor, rule: FieldRule, *, in_url: bool
) -> JsonObject:
    """``schema``, the input schema of ``field``'s type, narrowed to what ``rule`` admits."""
    zero_allowed = not (is_required(field) or field.has_presence or field.is_repeated)
    if isinstance(rule, TextRule):
        return _text(schema, rule, empty_allowed=zero_allowed)
    if isinstance(rule, IntegerRule):
        return _integer(schema, rule, zero_allowed=zero_allowed, in_url=in_url)
    if isinstance(rule, ListRule):
        return _list(schema, rule, in_url=in_url)
    return _map(schema, rule)


def _text(schema: JsonObject, rule: TextRule, *, empty_allowed: bool) -> JsonObject:
    narrowed = dict(schema)
    if rule.pattern is not None:
        pattern = rule.pattern
        if empty_allowed and not re.fullmatch(pattern, ""):
            pattern = f"^$|{pattern}"  # both sides anchored: "" or the rule's pattern
        narrowed["pattern"] = pattern
    if rule.max_length is not None:
        narrowed["maxLength"] = rule.max_length
    if rule.excluded:
        narrowed["not"] = {"enum": sorted(rule.excluded)}
    return narrowed


def _integer(
    schema: JsonObject, rule: IntegerRule, *, zero_allowed: bool, in_url: bool
) -> JsonObject:
    # The field's type bounds the rule: a rule wider than an int32 does not widen the field.
    low = max(rule.minimum, schema["minimum"])
    high = min(rule.maximum, schema["maximum"])
    number_format = schema["format"]
    if zero_allowed and not low <= 0 <= high:
        if low - 1 <= 0 <= high + 1:  # 0 is next to the range: one range still
            low, high = min(low, 0), max(high, 0)
        else:
            return {
                "anyOf": [
                    integer_schema(0, 0, number_format, in_url=in_url),
                    integer_schema(low, high, number_format, in_url=in_url),
                ]
            }
    return integer_schema(low, high, number_format, in_url=in_url)


def _list(schema: JsonObject, rule: ListRule, *, in_url: bool) -> JsonObject:
    narrowed = dict(schema)
    if rule.min_items:
        narrowed["minItems"] = rule.min_items
    if rule.max_items is not None:
        narrowed["maxItems"] = rule.max_items
    items = narrowed["items"]
    if isinstance(rule.items, TextRule):
        narrowed["items"] = _text(items, rule.items, empty_allowed=False)
    elif isinstance(rule.items, IntegerRule):
        narrowed["items"] = _integer(items, rule.items, zero_allowed=False, in_url=in_url)
    return narrowed


def _map(schema: JsonObject, rule: MapRule) -> JsonObject:
    names = _text({}, rule.keys, empty_allowed=False)
    values = _text(schema["additionalProperties"], rule.values, empty_allowed=False)
    return {
        **schema,
        "additionalProperties": values,
        "propertyNames": names,
        "maxProperties": rule.max_entries,
    }


def message_rule_schema(message: Descriptor, rule: MessageRule) -> JsonObject:
    """A message's input schema constraint saying ``rule``, for its ``allOf``."""
    if isinstance(rule, AtMostOneSet):
        pairs = [
            [first, second]
            for index, first in enumerate(rule.fields)
            for second in rule.fields[index + 1 :]
        ]
        return {
            "description": f"at most one of {_listed(rule.fields)} may be set",
            "not": {"anyOf": [{"allOf": [_set(message, name) for name in pair]} for pair in pairs]},
        }
    assert isinstance(rule, SetOnlyWith)  # noqa: S101 - for the type checker: the other kind
    return {
        "description": f"`{rule.field}` may be set only with one of {_listed(rule.any_of)}",
        "if": _set(message, rule.field),
        "then": {"anyOf": [_set(message, name) for name in rule.any_of]},
    }


def _listed(names: tuple[str, ...]) -> str:
    return ", ".join(f"`{name}`" for name in names)


def _set(message: Descriptor, name: str) -> JsonObject:
    """The schema of "the field ``name`` is present and not its zero value"."""
    field = message.fields_by_name[name]
    if field.is_repeated:
        value: JsonObject = {"minItems": 1, "minProperties": 1}  # whichever applies
    elif field.type == FieldDescriptor.TYPE_BOOL:
        value = {"const": True}
    elif field.type == FieldDescriptor.TYPE_STRING:
        value = {"minLength": 1}
    elif field.message_type is None and field.enum_type is None:  # a number
        value = {"not": {"enum": [0, "0"]}}
    else:  # a message is set by being there (null is refused), an enum too (0 is no input)
        value = {}
    return {"required": [name], "properties": {name: value}}
