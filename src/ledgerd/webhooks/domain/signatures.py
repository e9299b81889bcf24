"""How a delivery is signed, and the headers that carry it (docs/webhooks.md, "Signatures").

The signature is HMAC-SHA256, keyed with the endpoint's secret (the whole ``whsec_...`` text,
as UTF-8), over the bytes ``{timestamp}.{body}``: the Unix time the request is made, a full
stop, and the request body exactly as sent. It travels as

    Ledgerd-Signature: t=1767225600,v1=5257a8...,v1=9c0d13...

with one ``v1`` per secret that signs (two while a rotated secret's grace lasts, the current
one first). The timestamp inside the signed bytes lets a receiver refuse an old request
replayed by someone who recorded it; each ``v1`` lets it switch secrets without a gap.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

SIGNATURE_HEADER = "Ledgerd-Signature"
EVENT_ID_HEADER = "Ledgerd-Event-Id"
EVENT_TYPE_HEADER = "Ledgerd-Event-Type"
SEQUENCE_HEADER = "Ledgerd-Sequence"
LEDGER_HEADER = "Ledgerd-Ledger"
WEBHOOK_HEADER = "Ledgerd-Webhook-Id"
ATTEMPT_HEADER = "Ledgerd-Delivery-Attempt"
# CloudEvents' HTTP binding, structured mode: the media type of a JSON event document.
CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
SIGNATURE_SCHEME = "v1"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``{timestamp}.{body}`` under ``secret``."""
    signed = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    """``t=<timestamp>,v1=<hex>[,v1=<hex>]``: one signature per secret, in the order given."""
    if not secrets:
        msg = "a delivery is signed by one secret at least"
        raise ValueError(msg)
    signatures = (f"{SIGNATURE_SCHEME}={signature(s, timestamp, body)}" for s in secrets)
    return ",".join((f"t={timestamp}", *signatures))


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event on its way to one endpoint: the document to POST and what names it."""

    sequence: int
    event_id: str
    event_type: str
    body: bytes
    # A dead letter delivered again on request, rather than the next event of the stream.
    replay: bool = False


def delivery_headers(  # noqa: PLR0913 - each header's value, named
    delivery: Delivery,
    *,
    ledger: str,
    webhook_id: str,
    attempt: int,
    secrets: Sequence[str],
    timestamp: int,
) -> dict[str, str]:
    """Every header of the request that delivers ``delivery`` (docs/webhooks.md lists them)."""
    return {
        "Content-Type": CONTENT_TYPE,
        EVENT_ID_HEADER: delivery.event_id,
        EVENT_TYPE_HEADER: delivery.event_type,
        SEQUENCE_HEADER: str(delivery.sequence),
        LEDGER_HEADER: ledger,
        WEBHOOK_HEADER: webhook_id,
        ATTEMPT_HEADER: str(attempt),
        SIGNATURE_HEADER: signature_header(secrets, timestamp, delivery.body),
    }
