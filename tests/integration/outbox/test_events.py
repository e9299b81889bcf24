"""Events are written with the change, numbered per ledger, and relayed in order: both DBs."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from ledgerd.kernel.result import Err
from ledgerd.ledger.application.post_transfers import PostTransfers
from ledgerd.ledger.published.events import decode
from ledgerd.platform.db.unit_of_work import SqlAlchemyUnitOfWork
from ledgerd.platform.messaging.hub import InProcessHub
from ledgerd.platform.outbox import tables as outbox
from ledgerd.platform.outbox.relay import OutboxRelay, RelayOptions
from ledgerd.platform.outbox.store import OutboxStore
from ledgerd.v1 import events_pb2 as events_pb
from ledgerd.v1 import ledger_pb2 as pb
from tests.integration.conftest import LedgerApp
from tests.integration.outbox.helpers import (
    EVERY_CHANGE,
    FlakyPublisher,
    make_every_change,
    open_books,
    pay,
    payloads,
    receive,
)


async def _relay(app: LedgerApp) -> tuple[OutboxRelay, InProcessHub]:
    return await app.container.get(OutboxRelay), await app.container.get(InProcessHub)


async def _event_count(app: LedgerApp) -> int:
    async with app.engine.connect() as connection:
        return int(
            (
                await connection.execute(select(func.count()).select_from(outbox.outbox_events))
            ).scalar_one()
        )


async def test_every_change_is_one_event_in_the_ledgers_order(ledger_app: LedgerApp) -> None:
    relay, hub = await _relay(ledger_app)
    subscription = hub.subscribe()
    await make_every_change(ledger_app, "books")

    assert await relay.sweep() == len(EVERY_CHANGE)
    received = await receive(subscription, len(EVERY_CHANGE))

    assert [envelope.type for envelope in received] == EVERY_CHANGE
    assert [envelope.sequence for envelope in received] == list(range(1, len(EVERY_CHANGE) + 1))
    assert {envelope.ledger for envelope in received} == {"books"}
    assert {envelope.source for envelope in received} == {"/ledgerd/ledgers/books"}
    assert len({envelope.id for envelope in received}) == len(received)
    messages = payloads(received)
    # Transfer events follow the hash chain and carry its entries with balances after them.
    transfers = [m.transfer for m in messages if hasattr(m, "transfer")]
    assert [t.sequence for t in transfers] == list(range(1, len(transfers) + 1))
    listed = await ledger_app.queries.list_transfers("books", limit=100)
    assert [t.id for t in transfers] == [t.id for t in listed.items]
    captured = messages[EVERY_CHANGE.index("ledgerd.v1.PendingCaptured")]
    assert isinstance(captured, events_pb.PendingCaptured)
    assert captured.transfer.kind == pb.Transfer.CAPTURE
    assert received[5].subject == f"transfers/{captured.transfer.id}"
    # The hold released in full (4 pending entries) and 200 posted (2 entries).
    assert sorted((e.layer, e.amount) for e in captured.entries) == sorted(
        [(pb.Entry.PENDING, -300)] * 2 + [(pb.Entry.POSTED, 200)] * 2
    )
    # An event shows its transfer as created: the hold is still pending in its own event.
    first_hold = messages[EVERY_CHANGE.index("ledgerd.v1.PendingCreated")]
    assert isinstance(first_hold, events_pb.PendingCreated)
    assert first_hold.transfer.status == pb.Transfer.PENDING
    closed = messages[-1]
    assert isinstance(closed, events_pb.AccountClosed)
    assert closed.account.id == "alice"
    assert closed.account.status == pb.Account.CLOSED
    assert received[-1].subject == "accounts/alice"
    # Nothing left to publish.
    assert await relay.sweep() == 0
    (lag,) = await (await ledger_app.container.get(OutboxStore)).lag()
    assert (lag.stream, lag.unpublished, lag.oldest_unpublished) == ("books", 0, None)


async def test_balances_replayed_from_events_match_the_accounts(ledger_app: LedgerApp) -> None:
    """A read model built only from the events ends where the ledger's own balances are."""
    relay, hub = await _relay(ledger_app)
    subscription = hub.subscribe()
    await make_every_change(ledger_app, "books")
    await relay.sweep()
    projected: dict[str, list[int]] = {}
    for message in payloads(await receive(subscription, len(EVERY_CHANGE))):
        for entry in getattr(message, "entries", ()):
            balance = projected.setdefault(entry.account, [0, 0, 0, 0])
            slot = (0 if entry.layer == pb.Entry.POSTED else 2) + (
                0 if entry.side == pb.Entry.DEBIT else 1
            )
            balance[slot] += entry.amount
            after = entry.balance_after
            assert balance == [
                after.posted_debits,
                after.posted_credits,
                after.pending_debits,
                after.pending_credits,
            ]
    for account_id, balance in projected.items():
        stored = (await ledger_app.queries.get_balance("books", account_id)).balances
        assert balance == [
            stored.posted_debits,
            stored.posted_credits,
            stored.pending_debits,
            stored.pending_credits,
        ]


async def test_what_is_not_committed_leaves_no_event_and_no_gap(ledger_app: LedgerApp) -> None:
    await open_books(ledger_app, "books", "bank", "alice")
    before = await _event_count(ledger_app)
    # An atomic batch with one bad transfer writes nothing, events included.
    outcome = await ledger_app.post(
        PostTransfers(
            "books",
            [pay("a1", "bank", "alice", 5), pay("a2", "bank", "nobody", 5)],
            atomic=True,
        )
    )
    assert all(isinstance(result, Err) for result in outcome)
    assert await _event_count(ledger_app) == before
    # A replayed idempotency key returns the original and writes no second event.
    await ledger_app.post.post_one("books", pay("k", "bank", "alice", 5))
    replayed = await ledger_app.post.post_one("books", pay("k", "bank", "alice", 5))
    assert replayed.replayed
    assert await _event_count(ledger_app) == before + 1
    async with ledger_app.engine.connect() as connection:
        sequences = (
            await connection.execute(
                select(outbox.outbox_events.c.sequence)
                .where(outbox.outbox_events.c.stream == "books")
                .order_by(outbox.outbox_events.c.sequence)
            )
        ).scalars()
        assert list(sequences) == list(range(1, before + 2))


async def test_an_unreachable_broker_delays_events_and_loses_none(ledger_app: LedgerApp) -> None:
    hub = await ledger_app.container.get(InProcessHub)
    subscription = hub.subscribe()
    flaky = FlakyPublisher(hub)
    flaky.unavailable = 3
    moments = iter(ledger_app.clock.now() + timedelta(minutes=n) for n in range(1000))
    relay = OutboxRelay(
        OutboxStore(SqlAlchemyUnitOfWork(ledger_app.engine), now=lambda: next(moments)),
        flaky,
        options=RelayOptions(backoff_base_s=1, backoff_max_s=1),
        now=lambda: next(moments),
    )
    await make_every_change(ledger_app, "books")

    published = 0
    for _ in range(10):  # each sweep is a later "now", past the previous back-off
        published += await relay.sweep()
    assert published == len(EVERY_CHANGE)
    assert relay.stats.failures == 3
    received = await receive(subscription, len(EVERY_CHANGE))
    assert [envelope.sequence for envelope in received] == list(range(1, len(EVERY_CHANGE) + 1))


async def test_a_poison_event_is_dead_lettered_and_the_rest_flows(ledger_app: LedgerApp) -> None:
    hub = await ledger_app.container.get(InProcessHub)
    subscription = hub.subscribe()
    flaky = FlakyPublisher(hub)
    moments = iter(ledger_app.clock.now() + timedelta(minutes=n) for n in range(1000))
    store = OutboxStore(SqlAlchemyUnitOfWork(ledger_app.engine), now=lambda: next(moments))
    relay = OutboxRelay(
        store,
        flaky,
        options=RelayOptions(max_rejections=3, backoff_base_s=1, backoff_max_s=1),
        now=lambda: next(moments),
    )
    await make_every_change(ledger_app, "books")
    async with ledger_app.engine.connect() as connection:
        poison_id = (
            await connection.execute(
                select(outbox.outbox_events.c.id).where(outbox.outbox_events.c.sequence == 5)
            )
        ).scalar_one()
    flaky.refused = {poison_id}

    for _ in range(10):
        await relay.sweep()

    received = await receive(subscription, len(EVERY_CHANGE) - 1)
    assert [envelope.sequence for envelope in received] == [
        n for n in range(1, len(EVERY_CHANGE) + 1) if n != 5
    ]
    assert relay.stats.dead_lettered == 1
    (dead,) = await store.dead_letters()
    assert (dead.stream, dead.sequence, dead.id) == ("books", 5, poison_id)
    assert "fake refusal" in dead.reason
    (lag,) = await store.lag()
    assert lag.unpublished == 0
    # The event itself stays in the log, for replay.
    async with ledger_app.engine.connect() as connection:
        kept = (
            await connection.execute(
                select(outbox.outbox_events.c.type, outbox.outbox_events.c.data).where(
                    outbox.outbox_events.c.id == poison_id
                )
            )
        ).one()
    assert isinstance(decode(kept.type, kept.data), events_pb.PendingCreated)
