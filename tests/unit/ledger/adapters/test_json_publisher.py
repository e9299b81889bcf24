"""The JSON publisher: payloads rewritten on the way out, everything else handed on as is."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace

import pytest

from ledgerd.ledger.adapters.json_publisher import JsonPayloadPublisher
from ledgerd.ledger.published.events import decode_envelope
from ledgerd.platform.messaging.envelope import Envelope
from ledgerd.platform.messaging.hub import InProcessHub
from ledgerd.platform.messaging.ports import EventRejectedError
from tests.unit.ledger.published.every_event import envelope_of, every_event


class RecordingPublisher:
    """A broker that accepts everything and remembers each call."""

    def __init__(self) -> None:
        self.calls: list[list[Envelope]] = []
        self.closed = False

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        self.calls.append(list(envelopes))

    async def aclose(self) -> None:
        self.closed = True


async def _stored() -> list[Envelope]:
    return [envelope_of(event, n) for n, event in enumerate(await every_event(), start=1)]


async def test_a_batch_goes_out_in_json_in_order_with_its_attributes() -> None:
    stored = await _stored()
    inner = RecordingPublisher()
    await JsonPayloadPublisher(inner).publish(stored)

    (sent,) = inner.calls  # one call: the batch stays a batch
    assert [envelope.datacontenttype for envelope in sent] == ["application/json"] * len(stored)
    for original, published in zip(stored, sent, strict=True):
        assert published == replace(
            original, data=published.data, datacontenttype="application/json"
        )
        assert isinstance(json.loads(published.data), dict)
        assert decode_envelope(published) == decode_envelope(original)


async def test_an_event_without_a_json_form_is_refused_and_nothing_is_sent() -> None:
    first, second, *_ = await _stored()
    culprit = replace(second, type="ledgerd.v1.NoSuchEvent")
    inner = RecordingPublisher()
    with pytest.raises(EventRejectedError, match="has no JSON form") as refused:
        await JsonPayloadPublisher(inner).publish([first, culprit])
    assert refused.value.event_id == culprit.id  # the relay counts it against that event
    assert inner.calls == []


async def test_closing_closes_what_it_wraps() -> None:
    inner = RecordingPublisher()
    await JsonPayloadPublisher(inner).aclose()
    assert inner.closed


async def test_in_process_subscribers_see_the_json_payload() -> None:
    hub = InProcessHub()
    subscription = hub.subscribe()
    stored = await _stored()
    await JsonPayloadPublisher(hub).publish(stored)
    received = subscription.channel.drain()
    assert [envelope.id for envelope in received] == [envelope.id for envelope in stored]
    assert {envelope.datacontenttype for envelope in received} == {"application/json"}
    assert [decode_envelope(e) for e in received] == [decode_envelope(e) for e in stored]
    await hub.aclose()
