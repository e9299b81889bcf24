"""The event envelope: CloudEvents 1.0 attributes around a protobuf payload.

One envelope per domain event, written to the outbox in the transaction that made the change
and published from there unchanged, so every copy of an event on every broker carries the
same ``id`` (the deduplication key), the same per-ledger ``sequence`` (the order key) and the
same bytes.

Two content modes, as CloudEvents defines them:

- *binary*: the attributes travel as message headers (each broker adapter adds its binding's
  prefix: ``ce-`` for NATS, ``ce_`` for Kafka, ``cloudEvents_`` for AMQP; NATS header values
  are percent-encoded as the CloudEvents HTTP binding does) and the payload is the message
  body, as is;
- *structured*: one JSON document holding the attributes and the payload in ``data_base64``
  (for transports whose bodies must be text, and for people reading them).

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
        """Structured content mode: the CloudEvents JSON format, payload in ``data_base64``."""
        document: dict[str, str] = {
            **self.attributes(),
            "data_base64": base64.b64encode(self.data).decode("ascii"),
        }
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
        if not all(isinstance(value, str) for value in document.values()):
            msg = "every attribute of a ledgerd event is a string"
            raise MalformedEventError(msg)
        encoded = document.pop("data_base64", None)
        if encoded is None:
            msg = "missing data_base64"
            raise MalformedEventError(msg)
        try:
            data = base64.b64decode(encoded, validate=True)
        except binascii.Error as error:
            msg = f"data_base64 is not base64: {error}"
            raise MalformedEventError(msg) from error
        return cls.from_attributes(document, data)


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
