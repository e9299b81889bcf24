"""Where protobuf's JSON parser is laxer than the API, the checks the gateway makes first.

- A key given twice in one JSON object: ``json.loads`` keeps the last value, other parsers
  the first, so a proxy and the server could each act on a different request.
- ``null`` for a field: the parser reads it as "unset", which leaving the field out already
  says; the OpenAPI document makes no field nullable, so null is refused.
- Integers and timestamps spelled otherwise than :mod:`ledgerd.gateway.json_forms` says
  (``"+5"``, ``"1_000"``, a one-digit month): the parser reads them; the API does not.

Each is a VALIDATION_FAILED naming the field (or, for a repeated key, the key).
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from ledgerd.gateway.descriptors import WRAPPER_TYPES, is_well_known, map_entry
from ledgerd.gateway.json_forms import INTEGER_TEXT, TIMESTAMP_TEXT
from ledgerd.kernel.errors import validation_error

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


def check_values(descriptor: Descriptor, document: dict[str, Any], *, within: str = "") -> None:
    """Refuse the loose values of ``document``, a ``descriptor`` message as parsed JSON.

    Errors name fields by their path (``legs[0].amount``) without the ``within.`` prefix: the
    body field whose inside the client sent as the whole body. Names the parser does not know
    are skipped, as it refuses them itself. Only a message type that contains itself lets a
    document nest deeply; the caller reports a RecursionError as the parser's own.
    """
    try:
        _check_message(descriptor, document, "")
    except _LooseValueError as error:
        path = error.path.removeprefix(f"{within}.") if within else error.path
        raise validation_error(path, error.problem) from None


def _check_message(descriptor: Descriptor, document: dict[str, Any], where: str) -> None:
    for name, value in document.items():
        field = descriptor.fields_by_name.get(name) or descriptor.fields_by_camelcase_name.get(name)
        if field is None:
            continue
        path = f"{where}{field.name}"
        entry = map_entry(field)
        if entry is not None and isinstance(value, dict):
            for key, item in value.items():
                _check_value(entry.fields_by_name["value"], item, f"{path}.{key}")
        elif field.is_repeated and isinstance(value, list):
            for index, item in enumerate(value):
                _check_value(field, item, f"{path}[{index}]")
        else:  # a single value, or null for a list or map
            _check_value(field, value, path)


def _check_value(field: FieldDescriptor, value: object, path: str) -> None:
    nested = field.message_type
    if value is None:
        if nested is None or nested.full_name not in _NULLABLE:
            raise _LooseValueError(path, "must not be null; leave the field out to leave it unset")
    elif nested is None:
        if _is_integer(field) and isinstance(value, str) and not INTEGER_TEXT.fullmatch(value):
            raise _LooseValueError(path, 'must be an integer in decimal digits, like 42 or "42"')
    elif nested.full_name == _TIMESTAMP:
        if isinstance(value, str) and not TIMESTAMP_TEXT.fullmatch(value):
            raise _LooseValueError(path, "must be an RFC 3339 timestamp like 2024-01-31T12:00:00Z")
    elif nested.full_name in WRAPPER_TYPES:
        _check_value(nested.fields_by_name["value"], value, path)
    elif not is_well_known(nested) and isinstance(value, dict):
        _check_message(nested, value, f"{path}.")
