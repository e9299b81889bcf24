"""The event stream read back from the outbox: each envelope decoded into one of replay's facts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ledgerd.ledger.adapters.event_stream import OutboxLedgerEvents
from ledgerd.ledger.application.ledger_events import (
    AccountChanged,
    LedgerEvents,
    StreamedEvent,
    UnreadableEvent,
)
from ledgerd.ledger.published.events import with_json_payload
from ledgerd.platform.messaging.envelope import Envelope
from tests.fakes.ledger_store import FakeLedgerEvents, FakeUnitOfWork, LedgerTables
from tests.unit.ledger.application.scenario import LEDGER
from tests.unit.ledger.published.every_event import envelope_of, every_event


class ListedLog:
    """An outbox stream held in a list, read the way ``OutboxStore.read`` reads it."""

    def __init__(self, envelopes: Sequence[Envelope]) -> None:
        self.envelopes = list(envelopes)
        self.reads = 0

    async def read(self, stream: str, *, after: int = 0, limit: int = 1000) -> list[Envelope]:
        self.reads += 1
        later = [e for e in self.envelopes if e.ledger == stream and e.sequence > after]
        return later[:limit]


async def _facts(events: LedgerEvents, ledger_id: str = LEDGER) -> list[StreamedEvent]:
    return [fact async for fact in events.stream(ledger_id)]


async def test_the_published_events_say_what_the_domain_events_said() -> None:
    # The same story read both ways: decoded from the outbox's protobuf payloads by the adapter,
    # and straight from the domain events by the unit tests' fake. Equal facts keep the fake
    # honest and show the payloads carry everything replay needs.
    events = await every_event()
    log = ListedLog([envelope_of(event, n) for n, event in enumerate(events, start=1)])

    decoded = await _facts(OutboxLedgerEvents(log))
    fake = FakeLedgerEvents(FakeUnitOfWork(LedgerTables(events={LEDGER: events})))

    assert decoded == await _facts(fake)
    assert {type(fact).__name__ for fact in decoded} == {
        "LedgerOpened",
        "AccountOpened",
        "AccountChanged",
        "TransferRecorded",
    }


async def test_json_payloads_decode_to_the_same_facts() -> None:
    events = await every_event()
    envelopes = [envelope_of(event, n) for n, event in enumerate(events, start=1)]
    from_json = [with_json_payload(envelope) for envelope in envelopes]

    assert await _facts(OutboxLedgerEvents(ListedLog(from_json))) == await _facts(
        OutboxLedgerEvents(ListedLog(envelopes))
    )


async def test_an_event_that_does_not_decode_is_named_and_the_stream_goes_on() -> None:
    events = await every_event()
    first, second = envelope_of(events[1], 1), envelope_of(events[2], 2)
    log = ListedLog([replace(first, type="ledgerd.v1.Mystery"), replace(second, data=b"\xff")])

    facts = await _facts(OutboxLedgerEvents(log))

    assert facts[0] == UnreadableEvent(1, "not a ledger event type: 'ledgerd.v1.Mystery'")
    assert isinstance(facts[1], UnreadableEvent)
    assert facts[1].sequence == 2
    assert facts[1].reason.startswith(f"{second.type} payload does not parse as ")


async def test_a_long_stream_is_read_in_chunks_to_its_end() -> None:
    events = await every_event()
    change = next(e for e in events if type(e).__name__ == "AccountFrozen")
    count = 2_500
    log = ListedLog([envelope_of(change, n) for n in range(1, count + 1)])

    facts = await _facts(OutboxLedgerEvents(log))

    assert [fact.sequence for fact in facts] == list(range(1, count + 1))
    assert all(isinstance(fact, AccountChanged) for fact in facts)
    assert log.reads == 4  # three chunks, and the empty read that ends the stream
