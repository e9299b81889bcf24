"""Publishing a ledger's events again: the cursor moves back, the relay sends them once more."""

from __future__ import annotations

import pytest

from ledgerd.platform.messaging.hub import InProcessHub
from ledgerd.platform.outbox.relay import OutboxRelay, RelayOptions
from ledgerd.platform.outbox.store import OutboxStore
from tests.integration.conftest import LedgerApp
from tests.integration.outbox.helpers import (
    EVERY_CHANGE,
    FlakyPublisher,
    make_every_change,
    receive,
)

EVENTS = len(EVERY_CHANGE)


async def _unpublished(store: OutboxStore, ledger: str) -> int:
    [lag] = [lag for lag in await store.lag() if lag.stream == ledger]
    return lag.unpublished


async def test_events_published_again_come_in_order_with_their_ids(
    ledger_app: LedgerApp,
) -> None:
    hub = await ledger_app.container.get(InProcessHub)
    store = await ledger_app.container.get(OutboxStore)
    relay = await ledger_app.container.get(OutboxRelay)
    subscription = hub.subscribe()
    await make_every_change(ledger_app, "books")
    await relay.sweep()
    first_time = await receive(subscription, EVENTS)

    assert await store.rewind("books", after=10) == EVENTS - 10
    assert await _unpublished(store, "books") == EVENTS - 10
    await relay.sweep()
    again = await receive(subscription, EVENTS - 10)

    assert again == first_time[10:]  # the same envelopes: ids, sequences, bytes
    assert await _unpublished(store, "books") == 0


async def test_a_cursor_is_never_moved_forward_and_unknown_ledgers_are_refused(
    ledger_app: LedgerApp,
) -> None:
    store = await ledger_app.container.get(OutboxStore)
    await make_every_change(ledger_app, "books")  # nothing published yet: the cursor is at 0

    assert await store.rewind("books", after=3) == 0
    assert await _unpublished(store, "books") == EVENTS
    with pytest.raises(LookupError, match="no events for 'elsewhere'"):
        await store.rewind("elsewhere", after=0)
    with pytest.raises(ValueError, match="0 or more"):
        await store.rewind("books", after=-1)


async def test_an_event_dead_lettered_twice_keeps_one_dead_letter(ledger_app: LedgerApp) -> None:
    hub = await ledger_app.container.get(InProcessHub)
    store = await ledger_app.container.get(OutboxStore)
    await make_every_change(ledger_app, "books")
    poison = (await store.read("books"))[4]
    refusing = FlakyPublisher(hub)
    refusing.refused.add(poison.id)
    relay = OutboxRelay(store, refusing, options=RelayOptions(max_rejections=1))
    await relay.sweep()

    assert await store.rewind("books", after=0) == EVENTS
    await relay.sweep()  # refused again: its dead letter is brought up to date

    [letter] = await store.dead_letters()
    assert (letter.stream, letter.sequence, letter.id) == ("books", 5, poison.id)
    assert relay.stats.dead_lettered == 2
    assert await _unpublished(store, "books") == 0
