"""The checks the gateway makes before protobuf's JSON parser: stricter, and in the API's words.

The parser's own errors speak of its internals (``Message type "TransferInput"``, camelCase
``Available Fields``, Python's ``int()``) and name no field a client wrote, so every shape
and type it would refuse is refused here first: an unknown field (with the fields accepted
there, in snake_case), an object, list, string, boolean, integer or enum name where another
JSON type was sent, an integer past its type's range. And where the parser is laxer than the
API:

- A key given twice in one JSON object: ``json.loads`` keeps the last value, other parsers
  the first, so a proxy and the server could each act on a different request.
- ``null`` for a field: the parser reads it as "unset", which leaving the field out already
  says; the OpenAPI document makes no field nullable, so null is refused.
- Integers and timestamps spelled otherwise than :mod:`ledgerd.gateway.json_forms` says
  (``"+5"``, ``"1_000"``, a one-digit month): the parser reads them; the API does not.

Each is a VALIDATION_FAILED naming the field as written (``legs[0].memo``; for a repeated
key, the key).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from ledgerd.gateway.descriptors import WRAPPER_TYPES, is_well_known, map_entry
from ledgerd.gateway.json_forms import INTEGER_TEXT, TIMESTAMP_TEXT
from ledgerd.kernel.errors import validation_error
from ledgerd.kernel.rules import ApiRules, IntegerRule

_TIMESTAMP = "google.protobuf.Timestamp"
# Well-known types whose JSON form is, or may contain, null on purpose.
_NULLABLE = frozenset(
    {"google.protobuf.Value", "google.protobuf.Struct", "google.protobuf.ListValue"}
)
_T = FieldDescriptor
_INTEGER_TYPES = frozenset(
    {
        *(_T.TYPE_INT32, _T.TYPE_SINT32, _T.TYPE_SFIXED32, _T.TYPE_UINT32, _T.TYPE_FIXED32),
        *(_T.TYPE_INT64, _T.TYPE_SINT64, _T.TYPE_SFIXED64, _T.TYPE_UINT64, _T.TYPE_FIXED64),
    }
)


_INTEGER_RANGES = {
    **dict.fromkeys((_T.TYPE_INT32, _T.TYPE_SINT32, _T.TYPE_SFIXED32), (-(2**31), 2**31 - 1)),
    **dict.fromkeys((_T.TYPE_UINT32, _T.TYPE_FIXED32), (0, 2**32 - 1)),
    **dict.fromkeys((_T.TYPE_INT64, _T.TYPE_SINT64, _T.TYPE_SFIXED64), (-(2**63), 2**63 - 1)),
    **dict.fromkeys((_T.TYPE_UINT64, _T.TYPE_FIXED64), (0, 2**64 - 1)),
}


def _is_integer(field: FieldDescriptor) -> bool:
    return field.type in _INTEGER_TYPES


class DuplicateKeyError(ValueError):
    """A JSON object gives one key twice."""

    def __init__(self, key: str) -> None:
        super().__init__(f"the key {key!r} is given twice in one object")
        self.key = key


def loads(body: bytes) -> object:
    """``json.loads``, raising :class:`DuplicateKeyError` for a key repeated in an object."""
    return json.loads(body, object_pairs_hook=_unique_keys)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKeyError(key)
            seen.add(key)
    return document


class _LooseValueError(Exception):
    def __init__(self, path: str, problem: str) -> None:
        super().__init__(path, problem)
        self.path = path
        self.problem = problem


def check_values(
    descriptor: Descriptor,
    document: dict[str, Any],
    *,
    within: str = "",
    in_url: Collection[str] = (),
    rules: ApiRules | None = None,
) -> None:
    """Refuse the loose values of ``document``, a ``descriptor`` message as parsed JSON.

    Errors name fields by their path (``legs[0].amount``) without the ``within.`` prefix: the
    body field whose inside the client sent as the whole body. Names the parser does not know
    are refused with the fields that are accepted there, in snake_case, leaving out ``in_url``:
    the request fields the URL path sets. An integer past its type's range is refused with the
    range its rule in ``rules`` gives, if it has one (a page size past int32: "between 1 and
    1000"). Only a message type that contains itself lets a
    document nest deeply; the caller reports a RecursionError as the parser's own.
    """
    try:
        _check_message(descriptor, document, "", rules or ApiRules(), hidden=in_url)
    except _LooseValueError as error:
        path = error.path.removeprefix(f"{within}.") if within else error.path
        raise validation_error(path, error.problem) from None


def _check_message(
    descriptor: Descriptor,
    document: dict[str, Any],
    where: str,
    rules: ApiRules,
    hidden: Collection[str] = (),
) -> None:
    for name, value in document.items():
        field = descriptor.fields_by_name.get(name) or descriptor.fields_by_camelcase_name.get(name)
        if field is None:
            fields = _fields_of(descriptor, hidden)
            raise _LooseValueError(f"{where}{name}", f"is not a field; {fields}")
        path = f"{where}{field.name}"
        entry = map_entry(field)
        if entry is not None and value is not None:
            if not isinstance(value, dict):
                raise _LooseValueError(path, "must be an object of names to values")
            for key, item in value.items():
                _check_value(entry.fields_by_name["value"], item, f"{path}.{key}", rules)
        elif field.is_repeated and value is not None:
            if not isinstance(value, list):
                raise _LooseValueError(path, "must be a list")
            for index, item in enumerate(value):
                _check_value(field, item, f"{path}[{index}]", rules)
        else:  # a single value, or null for a list or map
            _check_value(field, value, path, rules)


def _fields_of(descriptor: Descriptor, hidden: Collection[str] = ()) -> str:
    names = [field.name for field in descriptor.fields if field.name not in hidden]
    return "the fields here are " + ", ".join(names)


def _check_value(field: FieldDescriptor, value: object, path: str, rules: ApiRules) -> None:
    nested = field.message_type
    if value is None:
        if nested is None or nested.full_name not in _NULLABLE:
            raise _LooseValueError(path, "must not be null; leave the field out to leave it unset")
    elif nested is None:
        _check_scalar(field, value, path, rules)
    elif nested.full_name == _TIMESTAMP:
        if not isinstance(value, str) or not TIMESTAMP_TEXT.fullmatch(value):
            raise _LooseValueError(path, "must be an RFC 3339 timestamp like 2024-01-31T12:00:00Z")
    elif nested.full_name in WRAPPER_TYPES:
        _check_value(nested.fields_by_name["value"], value, path, rules)
    elif not is_well_known(nested):
        if not isinstance(value, dict):
            raise _LooseValueError(path, f"must be an object; {_fields_of(nested)}")
        _check_message(nested, value, f"{path}.", rules)


def _check_scalar(field: FieldDescriptor, value: object, path: str, rules: ApiRules) -> None:
    """Refuse a value of the wrong JSON type for a scalar field, naming what it takes."""
    if _is_integer(field):
        _check_integer(field, value, path, rules)
    elif field.type == _T.TYPE_BOOL:
        if not isinstance(value, bool):
            raise _LooseValueError(path, "must be true or false (without quotes)")
    elif field.type in {_T.TYPE_STRING, _T.TYPE_BYTES}:
        if not isinstance(value, str):
            raise _LooseValueError(path, "must be a string")
    elif field.enum_type is not None:
        names = [known.name for known in field.enum_type.values]
        if value not in names and not _is_number(value):
            raise _LooseValueError(path, "must be one of " + ", ".join(names))
    elif not (_is_number(value) or isinstance(value, str)):  # "NaN", "Infinity"
        raise _LooseValueError(path, "must be a number")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_MAX_DIGITS = 21
_INTEGER_WORDS = 'must be an integer in decimal digits, like 42 or "42"'


def _check_integer(field: FieldDescriptor, value: object, path: str, rules: ApiRules) -> None:
    low, high = _INTEGER_RANGES[field.type]
    if isinstance(value, str):
        if not INTEGER_TEXT.fullmatch(value):
            raise _LooseValueError(path, _INTEGER_WORDS)
        # Past 20 digits no field's range reaches, and int() refuses thousands of them.
        number = int(value) if len(value) <= _MAX_DIGITS else high + 1
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        raise _LooseValueError(path, _INTEGER_WORDS)
    if not low <= number <= high:
        rule = rules.fields.get(field.full_name)
        if isinstance(rule, IntegerRule):  # the server's own words for the field's range
            raise _LooseValueError(path, f"must be between {rule.minimum} and {rule.maximum}")
        raise _LooseValueError(path, f"must be an integer from {low} to {high}")
