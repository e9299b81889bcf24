"""A ledger event as a webhook delivers it, and the accounts it concerns (for filters).

The document is CloudEvents' structured JSON (``Envelope.to_json``) with the payload in
protobuf's JSON mapping (the ledger's ``with_json_payload``), as the brokers receive it with
``LEDGERD_EVENTS_FORMAT=json``: one shape for every consumer of ledgerd's events. An event of the
outbox that is not one of the ledger's (none are, today) travels as written, its payload in
``data_base64``, and concerns no account.
"""

from __future__ import annotations

from ledgerd.ledger.published.events import (
    UnknownEventError,
    accounts_concerned,
    decode_envelope,
    with_json_payload,
)
from ledgerd.platform.messaging.envelope import Envelope


def delivery_document(envelope: Envelope) -> bytes:
    """The request body delivering ``envelope``: compact JSON, keys sorted."""
    try:
        return with_json_payload(envelope).to_json()
    except UnknownEventError:
        return envelope.to_json()


def accounts_of(envelope: Envelope) -> frozenset[str]:
    """The accounts ``envelope``'s event is about; none for an event the ledger did not write."""
    try:
        return accounts_concerned(decode_envelope(envelope))
    except UnknownEventError:
        return frozenset()
