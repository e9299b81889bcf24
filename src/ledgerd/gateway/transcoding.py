"""JSON ↔ protobuf by reflection: an HTTP request becomes the RPC's request message.

Path variables, query parameters and the body are gathered into one JSON object keyed by
field name and parsed with protobuf's own proto3-JSON parser, so the REST API accepts exactly
what the mapping allows (64-bit integers as strings or numbers, enum names, RFC 3339
timestamps) and rejects the rest: unknown fields, wrong types, malformed JSON. Where that
parser is laxer than the API (a repeated key, null, ``"+5"`` for 5), :mod:`.strict_json` refuses
first.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from ledgerd.gateway import strict_json
from ledgerd.gateway.http_rules import WHOLE_BODY, HttpRoute
from ledgerd.kernel.errors import validation_error
from ledgerd.kernel.rules import ApiRules

MAX_BODY_BYTES = 4 * 1024 * 1024
_TIMESTAMP = "google.protobuf.Timestamp"


def _field(descriptor: Descriptor, path: str) -> tuple[FieldDescriptor, list[str]]:
    """The field a dotted path (``a.b.c``) names, with the path's parts."""
    parts = path.split(".")
    current = descriptor
    found: FieldDescriptor | None = None
    for index, part in enumerate(parts):
        found = current.fields_by_name.get(part)
        if found is None:
            raise validation_error(path, "is not a field of this request")
        if index < len(parts) - 1:
            if found.message_type is None or found.is_repeated:
                raise validation_error(path, "is not a field of this request")
            current = found.message_type
    assert found is not None  # noqa: S101 - split() yields at least one part
    return found, parts


def _scalar(field: FieldDescriptor, text: str, name: str) -> object:
    """A query or path string as the JSON value the proto3 mapping expects for ``field``."""
    if field.type == FieldDescriptor.TYPE_BOOL:
        if text not in {"true", "false"}:
            raise validation_error(name, "must be true or false")
        return text == "true"
    nested = field.message_type
    if nested is not None and nested.full_name != _TIMESTAMP:
        raise validation_error(name, "cannot be given in the URL; send it in the body")
    # Numbers, enums, strings and timestamps are all accepted as JSON strings by the parser.
    return text


def _place(target: dict[str, Any], parts: list[str], value: object) -> None:
    for part in parts[:-1]:
        nested = target.setdefault(part, {})
        if not isinstance(nested, dict):
            raise validation_error(".".join(parts), "is given twice")
        target = nested
    target[parts[-1]] = value


def build_request(
    route: HttpRoute,
    *,
    path_values: Mapping[str, str],
    query: Iterable[tuple[str, str]],
    body: bytes,
    rules: ApiRules | None = None,
) -> Message:
    """The request message for ``route``'s method from the parts of an HTTP request.

    The route's body spec says what the body fills: ``"*"`` (the whole message), one field,
    or nothing (a body is then refused). Only the route's query parameters may be given.
    ``rules`` (the server's) only word the refusal of an integer past its type's range.
    """
    descriptor = route.method.input_type
    body_field = route.body
    query_names = {parameter.name for parameter in route.query_parameters}
    document = _body_document(body_field, body)
    for name, text in path_values.items():
        field, parts = _field(descriptor, name)
        if len(parts) == 1 and parts[0] in document:
            raise validation_error(name, "is set by the URL path; do not repeat it in the body")
        _place(document, parts, _scalar(field, text, name))
    _add_query(descriptor, document, query, allowed=query_names)
    message = GetMessageClass(descriptor)()
    try:
        within = "" if body_field in {None, WHOLE_BODY} else str(body_field)
        in_url = {name.partition(".")[0] for name in path_values}
        strict_json.check_values(descriptor, document, within=within, in_url=in_url, rules=rules)
        json_format.ParseDict(document, message, ignore_unknown_fields=False)
    except json_format.ParseError as error:
        # strict_json refuses first whatever the parser would; this is a safety net.
        raise validation_error("body", _readable(str(error))) from None
    except RecursionError:
        raise validation_error("body", "is nested too deeply") from None
    return message


def _body_document(body_field: str | None, body: bytes) -> dict[str, Any]:
    if body_field is None:
        if body:
            raise validation_error("body", "this method takes no request body")
        return {}
    parsed = _json_body(body)
    return dict(parsed) if body_field == WHOLE_BODY else {body_field: parsed}


def _add_query(
    descriptor: Descriptor,
    document: dict[str, Any],
    query: Iterable[tuple[str, str]],
    *,
    allowed: Collection[str],
) -> None:
    """Query parameters name fields (dotted for nested ones); repeated fields may repeat."""
    gathered: dict[str, list[object]] = {}
    for name, text in query:
        if name not in allowed:
            raise validation_error(name, "is not a query parameter of this method")
        field, parts = _field(descriptor, name)
        repeats = field.is_repeated
        if parts[0] in document or (name in gathered and not repeats):
            raise validation_error(name, "is given twice")
        gathered.setdefault(name, []).append(_scalar(field, text, name))
    for name, values in gathered.items():
        field, parts = _field(descriptor, name)
        _place(document, parts, values if field.is_repeated else values[0])


def _json_body(body: bytes) -> dict[str, Any]:
    if len(body) > MAX_BODY_BYTES:
        raise validation_error("body", f"is larger than {MAX_BODY_BYTES} bytes")
    if not body:
        return {}
    try:
        parsed = strict_json.loads(body)
    except strict_json.DuplicateKeyError as error:
        raise validation_error("body", str(error)) from None
    except RecursionError:
        raise validation_error("body", "is nested too deeply") from None
    except ValueError as error:
        # Malformed JSON, bad UTF-8, or an integer past Python's digit limit.
        raise validation_error("body", f"is not valid JSON: {error}") from None
    if not isinstance(parsed, dict):
        raise validation_error("body", "must be a JSON object")
    return parsed


def _readable(message: str) -> str:
    # The parser names fields by their full protobuf path; clients know the JSON names.
    return message.replace("ledgerd.v1.", "")


def render(message: Message) -> dict[str, Any]:
    """A response message as proto3 JSON with proto field names and every field present."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
