"""The event envelope: CloudEvents 1.0 attributes around a payload.

One envelope per domain event, written to the outbox in the transaction that made the change
and published from there, so every copy of an event on every broker carries the same ``id``
(the deduplication key) and the same per-ledger ``sequence`` (the order key). The outbox
holds the payload as protobuf (``datacontenttype: application/protobuf``); a publisher may
hand it over in another form (``application/json``, see ``LEDGERD_EVENTS_FORMAT``), with
every other attribute as written.

Two content modes, as CloudEvents defines them:

- *binary*: the attributes travel as message headers (each broker adapter adds its binding's
  prefix: ``ce-`` for NATS, ``ce_`` for Kafka, ``cloudEvents_`` for AMQP; NATS header values
  are percent-encoded as the CloudEvents HTTP binding does) and the payload is the message
  body, as is;
- *structured*: one JSON document holding the attributes and the payload (for transports
  whose bodies must be text, and for people reading them). As the CloudEvents JSON format
  says, a JSON payload (``application/json``, or any ``+json`` type) is the JSON value
  ``data`` itself, and any other payload is base64 text in ``data_base64``. A JSON payload
  read back from ``data`` is written out again in the canonical form of ``canonical_json``,
  which is also the form ledgerd publishes JSON payloads in, so an envelope makes the round
  trip byte for byte.

The extension attributes are CloudEvents' own: ``partitionkey`` (the ledger: order is kept per
ledger) and ``sequence`` (the event's position in its ledger's stream, from 1 with no gaps,
zero-padded to 20 digits because the extension orders sequences as strings).

The codec is written here rather than taken from the CloudEvents SDK because that SDK binds
only HTTP and Kafka, and every broker here needs the same few attributes mapped its own way.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

SPEC_VERSION = "1.0"
PROTOBUF = "application/protobuf"
JSON = "application/json"
SEQUENCE_DIGITS = 20
_REQUIRED = ("specversion", "id", "source", "type", "subject", "time", "partitionkey", "sequence")
_MAX_ATTRIBUTE = 4096


class MalformedEventError(ValueError):
    """A message that is not a ledgerd event envelope; the reason says what is wrong."""


@dataclass(frozen=True, slots=True)
class Envelope:
    id: str
    source: str
    type: str
    subject: str
    time: datetime
    ledger: str
    sequence: int
    data: bytes
    datacontenttype: str = PROTOBUF

    def attributes(self) -> dict[str, str]:
        """The attributes as strings, for binary content mode (headers without a prefix)."""
        return {
            "specversion": SPEC_VERSION,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "subject": self.subject,
            "time": _format_time(self.time),
            "datacontenttype": self.datacontenttype,
            "partitionkey": self.ledger,
            "sequence": f"{self.sequence:0{SEQUENCE_DIGITS}d}",
        }

    @classmethod
    def from_attributes(cls, attributes: Mapping[str, str], data: bytes) -> Envelope:
        """Rebuild an envelope from binary-mode headers (prefix already removed) and body."""
        missing = [name for name in _REQUIRED if not attributes.get(name)]
        if missing:
            msg = f"missing CloudEvents attributes: {', '.join(missing)}"
            raise MalformedEventError(msg)
        if attributes["specversion"] != SPEC_VERSION:
            msg = f"unsupported specversion {attributes['specversion']!r}"
            raise MalformedEventError(msg)
        too_long = [name for name in _REQUIRED if len(attributes[name]) > _MAX_ATTRIBUTE]
        if too_long:
            msg = f"attributes longer than {_MAX_ATTRIBUTE} characters: {', '.join(too_long)}"
            raise MalformedEventError(msg)
        return cls(
            id=attributes["id"],
            source=attributes["source"],
            type=attributes["type"],
            subject=attributes["subject"],
            time=_parse_time(attributes["time"]),
            ledger=attributes["partitionkey"],
            sequence=_parse_sequence(attributes["sequence"]),
            data=data,
            datacontenttype=attributes.get("datacontenttype") or PROTOBUF,
        )

    def to_json(self) -> bytes:
        """Structured content mode: the CloudEvents JSON format (``data`` or ``data_base64``)."""
        document: dict[str, object] = dict(self.attributes())
        payload = _json_value(self) if is_json(self.datacontenttype) else _NOT_JSON
        if payload is _NOT_JSON:
            document["data_base64"] = base64.b64encode(self.data).decode("ascii")
        else:
            document["data"] = payload
        return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Envelope:
        try:
            document = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            msg = f"not a JSON document: {error}"
            raise MalformedEventError(msg) from error
        if not isinstance(document, dict):
            msg = "a structured event must be a JSON object"
            raise MalformedEventError(msg)
        payload = {name: document.pop(name) for name in ("data", "data_base64") if name in document}
        if not all(isinstance(value, str) for value in document.values()):
            msg = "every attribute of a ledgerd event is a string"
            raise MalformedEventError(msg)
        if len(payload) != 1:
            msg = (
                "both data and data_base64: an event has one payload"
                if payload
                else "no payload: neither data nor data_base64"
            )
            raise MalformedEventError(msg)
        if "data" in payload:
            # The JSON format's rule: without a datacontenttype, `data` is JSON.
            document.setdefault("datacontenttype", JSON)
            data = _data_member(payload["data"], document["datacontenttype"])
        else:
            data = _data_base64_member(payload["data_base64"])
        return cls.from_attributes(document, data)


def media_type(content_type: str) -> str:
    """``type/subtype`` of a content type, lower case, without parameters (``; charset=``)."""
    return content_type.partition(";")[0].strip().lower()


def is_json(content_type: str) -> bool:
    """Whether a payload of ``content_type`` is JSON text (``application/json``, ``*/*+json``)."""
    kind = media_type(content_type)
    return kind == JSON or kind.endswith("+json")


def canonical_json(value: object) -> bytes:
    """``value`` as compact UTF-8 JSON with sorted keys: equal values give equal bytes."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


_NOT_JSON = object()


def _json_value(envelope: Envelope) -> object:
    # A payload labelled JSON that does not parse still has to travel: as base64, which the
    # JSON format allows for any content type, rather than failing the whole envelope.
    try:
        return json.loads(envelope.data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return _NOT_JSON


def _data_member(value: object, content_type: str) -> bytes:
    if is_json(content_type):
        return canonical_json(value)
    if isinstance(value, str):  # the JSON format's text payload: a JSON string
        return value.encode()
    msg = (
        f"data is a JSON {_json_kind(value)} but datacontenttype is {content_type!r}, "
        "which is not JSON: such a payload belongs in data_base64"
    )
    raise MalformedEventError(msg)


def _json_kind(value: object) -> str:
    match value:
        case dict():
            return "object"
        case list():
            return "array"
        case bool():  # before int: a bool is an int to Python
            return "boolean"
        case int() | float():
            return "number"
        case None:
            return "null"
        case _:
            return "string"


def _data_base64_member(value: object) -> bytes:
    if not isinstance(value, str):
        msg = "data_base64 is not a string"
        raise MalformedEventError(msg)
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as error:
        msg = f"data_base64 is not base64: {error}"
        raise MalformedEventError(msg) from error


def _format_time(moment: datetime) -> str:
    # RFC 3339 in UTC with microseconds, the precision the ledger keeps.
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        msg = f"time is not RFC 3339: {text!r}"
        raise MalformedEventError(msg) from error
    if moment.tzinfo is None:
        msg = f"time has no offset: {text!r}"
        raise MalformedEventError(msg)
    return moment.astimezone(UTC)


def _parse_sequence(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        msg = f"sequence is not a decimal number: {text!r}"
        raise MalformedEventError(msg)
    sequence = int(text)
    if sequence < 1:
        msg = "sequence starts at 1"
        raise MalformedEventError(msg)
    return sequence
