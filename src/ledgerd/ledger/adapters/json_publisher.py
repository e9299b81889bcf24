"""Publishing the ledger's events with JSON payloads (``LEDGERD_EVENTS_FORMAT=json``).

The outbox keeps every payload as protobuf, the canonical form that replay and the store read.
This publisher sits in front of the chosen one (a broker adapter or the in-process hub) and
rewrites each payload into protobuf's JSON mapping on its way out (``datacontenttype:
application/json``; the options are in ``published/json_payloads.py``). Every other attribute
(id, sequence, type, subject, time, source, partition key) goes out as written, so
deduplication and ordering work as they do with protobuf payloads.

It lives here rather than in ``platform.messaging`` because only the ledger context knows
which message an envelope's ``type`` names.
"""

from __future__ import annotations

from collections.abc import Sequence

from ledgerd.ledger.published.events import UnknownEventError, with_json_payload
from ledgerd.platform.messaging.envelope import Envelope
from ledgerd.platform.messaging.ports import EventRejectedError, Publisher


class JsonPayloadPublisher:
    """Implements ``Publisher``: hands ``inner`` each envelope with a JSON payload."""

    def __init__(self, inner: Publisher) -> None:
        self.inner = inner

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        # The whole batch is rewritten before anything is sent: an event that cannot be has
        # to be refused before its successors reach the broker, or they would overtake it.
        await self.inner.publish([_in_json(envelope) for envelope in envelopes])

    async def aclose(self) -> None:
        await self.inner.aclose()


def _in_json(envelope: Envelope) -> Envelope:
    try:
        return with_json_payload(envelope)
    except UnknownEventError as error:
        # Not the broker's fault and no retry will change it: counted against the event,
        # which the relay dead-letters once it has been refused often enough.
        msg = f"event {envelope.id} has no JSON form: {error}"
        raise EventRejectedError(msg, event_id=envelope.id) from error
