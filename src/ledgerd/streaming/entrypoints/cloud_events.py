"""A stream event as the HTTP streams send it: the CloudEvents JSON format, payload in JSON.

The very document a broker receives in structured mode with ``LEDGERD_EVENTS_FORMAT=json``
(``platform/messaging/envelope.py``, docs/events.md), on one line. Rendering decodes the
protobuf payload and prints it as JSON, the costliest step of sending an event; one event goes
to many subscribers, live or catching up, so each is rendered once and kept a while, by its
place in its ledger.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict

from ledgerd.ledger.published.events import UnknownEventError, with_json_payload
from ledgerd.platform.messaging.envelope import Envelope
from ledgerd.streaming.domain.events import StreamEvent

# Enough for a burst of every ledger's recent events; each is a few hundred bytes.
DEFAULT_CAPACITY = 4096


def cloud_event_json(event: StreamEvent) -> str:
    envelope = Envelope(
        id=event.id,
        source=event.source,
        type=event.type,
        subject=event.subject,
        time=event.time,
        ledger=event.ledger,
        sequence=event.sequence,
        data=event.data,
        datacontenttype=event.datacontenttype,
    )
    # Not a ledger event (none today): its payload goes as it is, in data_base64.
    with contextlib.suppress(UnknownEventError):
        envelope = with_json_payload(envelope)
    return envelope.to_json().decode()


class RenderedEvents:
    """Each event's JSON, rendered once: the last ``capacity`` by (ledger, sequence)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._rendered: OrderedDict[tuple[str, int], str] = OrderedDict()

    def json(self, event: StreamEvent) -> str:
        key = (event.ledger, event.sequence)
        rendered = self._rendered.get(key)
        if rendered is not None:
            self._rendered.move_to_end(key)
            return rendered
        rendered = cloud_event_json(event)
        self._rendered[key] = rendered
        if len(self._rendered) > self._capacity:
            self._rendered.popitem(last=False)
        return rendered
