"""Webhook deliveries to a real HTTP receiver, on SQLite and PostgreSQL.

Each matching event delivered once, in order, signed as docs/webhooks.md says; filters by type
and by account respected; an endpoint of another ledger sent nothing.
"""

from __future__ import annotations

from ledgerd.ledger.application.open_account import OpenAccount
from ledgerd.ledger.domain.model import AccountFlags
from ledgerd.platform.outbox.store import OutboxStore
from ledgerd.webhooks.domain.deliveries import AttemptOutcome
from tests.integration.outbox.helpers import USD, open_books, pay
from tests.integration.webhooks.support import dispatching, register, settled, webhook_app
from tests.webhook_receiver import receiving, signed_by

LEDGER = "books"
OTHER = "other-books"


async def test_each_matching_event_is_delivered_once_in_order_and_signed(
    migrated_database_url: str,
) -> None:
    async with webhook_app(migrated_database_url) as app, receiving() as receiver:
        await open_books(app, LEDGER, "bank", "alice", "bob")
        await open_books(app, OTHER, "x", "y")
        everything = await register(app, LEDGER, receiver.url("/all"))
        transfers = await register(
            app, LEDGER, receiver.url("/transfers"), event_types=("ledgerd.v1.TransferPosted",)
        )
        alices = await register(app, LEDGER, receiver.url("/alice"), accounts=("alice",))
        elsewhere = await register(app, OTHER, receiver.url("/other"))
        async with dispatching(app):
            await app.post.post_one(LEDGER, pay("p1", "bank", "alice", 500))
            await app.post.post_one(LEDGER, pay("p2", "bank", "bob", 300))
            await app.open_account(OpenAccount(LEDGER, "carol", USD, AccountFlags()))
            await app.post.post_one(LEDGER, pay("p3", "alice", "carol", 200))
            await app.post.post_one(LEDGER, pay("h1", "bob", "carol", 50, pending=True))
            written = await (await app.container.get(OutboxStore)).read(
                LEDGER, after=everything.webhook.status.delivered_sequence
            )
            assert len(written) == 5
            # Every endpoint done before the dispatcher stops (stopping ends each one's round).
            posted = [event.id for event in written if event.type == "ledgerd.v1.TransferPosted"]
            for hook, count in ((everything, len(written)), (transfers, len(posted)), (alices, 2)):
                await settled(app, LEDGER, hook.webhook.endpoint.id, count)

        delivered = receiver.at("/all")
        assert [arrival.event_id for arrival in delivered] == [event.id for event in written]
        assert [arrival.sequence for arrival in delivered] == [event.sequence for event in written]
        for arrival, event in zip(delivered, written, strict=True):
            assert signed_by(arrival, everything.secret)
            assert not signed_by(arrival, transfers.secret)
            document = arrival.document
            assert document["id"] == event.id
            assert document["type"] == event.type == arrival.event_type
            assert document["sequence"] == f"{event.sequence:020d}"
            assert document["datacontenttype"] == "application/json"
            assert isinstance(document["data"], dict)  # the JSON payload, not base64
            assert arrival.headers["content-type"].startswith("application/cloudevents+json")
            assert arrival.headers["ledgerd-ledger"] == LEDGER
            assert arrival.headers["ledgerd-webhook-id"] == everything.webhook.endpoint.id

        assert [arrival.event_id for arrival in receiver.at("/transfers")] == posted
        assert all(signed_by(arrival, transfers.secret) for arrival in receiver.at("/transfers"))
        # p1 (bank → alice) and p3 (alice → carol) touch alice; carol's opening and p2 do not.
        assert [arrival.event_id for arrival in receiver.at("/alice")] == [
            written[0].id,
            written[3].id,
        ]
        assert all(signed_by(arrival, alices.secret) for arrival in receiver.at("/alice"))
        assert receiver.at("/other") == []
        assert elsewhere.webhook.endpoint.ledger == OTHER
        recorded = await settled(app, LEDGER, everything.webhook.endpoint.id, len(written))
        assert [attempt.outcome for attempt in recorded] == [AttemptOutcome.DELIVERED] * 5
        assert [attempt.status_code for attempt in recorded] == [200] * 5
