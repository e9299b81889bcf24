"""Event payloads in protobuf's JSON mapping (proto3 JSON), for ``LEDGERD_EVENTS_FORMAT=json``.

The JSON is the same message as the protobuf payload, written by ``google.protobuf.json_format``
with these choices:

- field names are the proto names (``balance_after``, ``created_at``), as in the REST API's
  responses, so one client reads both the same way; proto3 JSON readers accept them beside
  the ``lowerCamelCase`` names;
- 64-bit integers are strings (``"amount": "500"``), as proto3 JSON says: a JSON number loses
  precision past 2**53 in many readers, and amounts and sequences are 64-bit;
- enums are their names (``"POSTED"``), timestamps RFC 3339 strings;
- every field without presence is written even when it holds its default (``"amount": "0"``,
  ``"metadata": {}``), as the REST gateway does, so a payload always has the same shape and
  "absent" never has to be read as "zero"; fields with presence (an unset ``expiresAt``) are
  left out when unset;
- the text is ``canonical_json``: compact, keys sorted, UTF-8. Map entries (``metadata``) come
  out of protobuf in no fixed order, so sorting is what makes one message always the same
  bytes.

Reading ignores fields it does not know, as the protobuf parser does: a consumer built
against an older ``events.proto`` keeps reading the events of a newer ledgerd.
"""

from __future__ import annotations

import json

from google.protobuf import json_format
from google.protobuf.message import Message

from ledgerd.platform.messaging.envelope import canonical_json


def render_json(message: Message) -> bytes:
    """``message`` as its JSON payload (the choices above)."""
    return canonical_json(
        json_format.MessageToDict(
            message,
            always_print_fields_with_no_presence=True,
            preserving_proto_field_name=True,
            use_integers_for_enums=False,
        )
    )


def parse_json(data: bytes, message: Message) -> None:
    """Fill ``message`` from a JSON payload; ``json_format.ParseError`` if it does not parse."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        msg = f"not a JSON document: {error}"
        raise json_format.ParseError(msg) from error
    # Checked here because, told to ignore unknown fields, the parser would take a string's
    # characters for field names and return an empty message.
    if not isinstance(document, dict):
        msg = "the payload is not a JSON object"
        raise json_format.ParseError(msg)
    json_format.ParseDict(document, message, ignore_unknown_fields=True)
