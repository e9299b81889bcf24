"""Stopping the dispatcher as ``serve`` and ``worker`` do (their background worker's block).

The attempt in flight finishes if it can within the shutdown grace, and is recorded as
interrupted if it cannot; either way the endpoint's place moves only with a recorded outcome,
so nothing is lost.
"""

from __future__ import annotations

import asyncio

from ledgerd.main.contexts.webhooks import delivering
from ledgerd.main.settings import Settings
from ledgerd.webhooks.application.queries import WebhookQueries
from ledgerd.webhooks.domain.deliveries import AttemptOutcome
from tests.integration.outbox.helpers import open_books, pay
from tests.integration.webhooks.support import attempts, register, settled, webhook_app
from tests.webhook_receiver import Arrival, receiving

LEDGER = "books"


async def test_an_attempt_in_flight_finishes_within_the_grace(migrated_sqlite_url: str) -> None:
    async def takes_a_moment(_arrival: Arrival) -> int:
        await asyncio.sleep(0.3)
        return 200

    async with (
        webhook_app(migrated_sqlite_url, shutdown_grace_seconds=10) as app,
        receiving() as receiver,
    ):
        await open_books(app, LEDGER, "bank", "alice")
        created = await register(app, LEDGER, receiver.url("/slowish"))
        receiver.answers["/slowish"] = takes_a_moment
        settings = await app.container.get(Settings)
        async with delivering(app.container, settings, "worker"):
            await app.post.post_one(LEDGER, pay("t1", "bank", "alice", 100))
            await receiver.wait_for(lambda: len(receiver.at("/slowish")) == 1)
        # Leaving the block waited for the answer: the attempt is recorded as delivered.
        (attempt,) = await attempts(app, LEDGER, created.webhook.endpoint.id)
        assert attempt.outcome is AttemptOutcome.DELIVERED
        queries = await app.container.get(WebhookQueries)
        view = await queries.get(LEDGER, created.webhook.endpoint.id)
        assert view.status.delivered_sequence == attempt.sequence


async def test_an_attempt_cut_short_is_recorded_as_interrupted_and_sent_again(
    migrated_sqlite_url: str,
) -> None:
    hanging = asyncio.Event()

    async def hangs_first(_arrival: Arrival) -> int:
        if not hanging.is_set():
            hanging.set()
            await asyncio.sleep(30)
        return 200

    async with (
        webhook_app(migrated_sqlite_url, shutdown_grace_seconds=0.2) as app,
        receiving() as receiver,
    ):
        await open_books(app, LEDGER, "bank", "alice")
        created = await register(app, LEDGER, receiver.url("/stuck"))
        webhook_id = created.webhook.endpoint.id
        receiver.answers["/stuck"] = hangs_first
        settings = await app.container.get(Settings)
        async with delivering(app.container, settings, "worker"):
            await app.post.post_one(LEDGER, pay("t1", "bank", "alice", 100))
            await receiver.wait_for(hanging.is_set)
        (cut,) = await attempts(app, LEDGER, webhook_id)
        assert (cut.outcome, cut.error) == (AttemptOutcome.INTERRUPTED, "interrupted by shutdown")
        queries = await app.container.get(WebhookQueries)
        before = await queries.get(LEDGER, webhook_id)
        # Not moved, not counted against the event: the next dispatcher sends it again.
        assert before.status.delivered_sequence == created.webhook.status.delivered_sequence
        assert before.status.failed_attempts == 0

        async with delivering(app.container, settings, "worker"):
            await receiver.wait_for(lambda: len(receiver.at("/stuck")) == 2)
            await settled(app, LEDGER, webhook_id, 2)
        first, second = receiver.at("/stuck")
        assert first.event_id == second.event_id
        assert (await attempts(app, LEDGER, webhook_id))[-1].outcome is AttemptOutcome.DELIVERED
