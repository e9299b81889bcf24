"""Endpoints that fail, recover, time out or are slow; dead letters and their replay; rotation.

Every receiver here is a real HTTP server; failures are real answers (500), real refused
connections and real timeouts. Retries are tens of milliseconds apart (``FAST_RETRIES``).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from ledgerd.platform.outbox.store import OutboxStore
from ledgerd.webhooks.application.replay_dead_letters import (
    ReplayDeadLetters,
    ReplayDeadLettersHandler,
)
from ledgerd.webhooks.application.rotate_secret import (
    RotateWebhookSecret,
    RotateWebhookSecretHandler,
)
from ledgerd.webhooks.domain.deliveries import AttemptOutcome
from tests.integration.conftest import LedgerApp
from tests.integration.outbox.helpers import open_books, pay
from tests.integration.webhooks.support import (
    dead_letters,
    dispatching,
    register,
    settled,
    webhook_app,
)
from tests.network import free_port
from tests.webhook_receiver import Arrival, receiving, signatures_of, signed_by

LEDGER = "books"
_NO_GRACE = timedelta(0)


async def _post(app: LedgerApp, count: int) -> list[str]:
    """``count`` transfers bank → alice; their events' ids, in order."""
    for number in range(count):
        await app.post.post_one(LEDGER, pay(f"t{number}", "bank", "alice", 100 + number))
    written = await (await app.container.get(OutboxStore)).read(LEDGER, after=3)
    assert len(written) == count  # after LedgerCreated and the two AccountCreated
    return [event.id for event in written]


async def test_a_failing_then_recovering_endpoint_gets_every_event_once_in_order(
    migrated_database_url: str,
) -> None:
    answered: list[int] = []

    async def unwell_then_well(_arrival: Arrival) -> int:
        # The first four requests fail, then every one succeeds.
        answered.append(500 if len(answered) < 4 else 200)
        return answered[-1]

    async with (
        webhook_app(migrated_database_url, webhooks_max_attempts=10) as app,
        receiving() as receiver,
    ):
        await open_books(app, LEDGER, "bank", "alice")
        hook = await register(app, LEDGER, receiver.url("/flaky"))
        receiver.answers["/flaky"] = unwell_then_well
        events = await _post(app, 3)
        async with dispatching(app):
            recorded = await settled(app, LEDGER, hook.webhook.endpoint.id, 4 + 3)

    arrivals = receiver.at("/flaky")
    # The first event four times (refused), then once more (taken), then each of the others:
    # nothing sent before the event ahead of it was acknowledged.
    assert [arrival.event_id for arrival in arrivals] == [events[0]] * 5 + events[1:]
    acknowledged = [
        arrival.event_id
        for arrival, status in zip(arrivals, answered, strict=True)
        if status == 200
    ]
    assert acknowledged == events
    assert [(a.attempt, a.outcome, a.status_code) for a in recorded] == [
        (1, AttemptOutcome.FAILED, 500),
        (2, AttemptOutcome.FAILED, 500),
        (3, AttemptOutcome.FAILED, 500),
        (4, AttemptOutcome.FAILED, 500),
        (5, AttemptOutcome.DELIVERED, 200),
        (1, AttemptOutcome.DELIVERED, 200),
        (1, AttemptOutcome.DELIVERED, 200),
    ]
    assert {attempt.error for attempt in recorded[:4]} == {"HTTP 500"}
    # Each retry said which attempt it was.
    assert [arrival.headers["ledgerd-delivery-attempt"] for arrival in arrivals[:5]] == [
        "1",
        "2",
        "3",
        "4",
        "5",
    ]


async def test_after_max_attempts_an_event_is_dead_lettered_and_the_endpoint_goes_on(
    migrated_database_url: str,
) -> None:
    async with webhook_app(migrated_database_url) as app, receiving() as receiver:
        await open_books(app, LEDGER, "bank", "alice")
        hook = await register(app, LEDGER, receiver.url("/picky"))
        webhook_id = hook.webhook.endpoint.id
        events = await _post(app, 3)
        poison = events[1]

        async def refuses_one(arrival: Arrival) -> int:
            return 500 if arrival.event_id == poison else 200

        receiver.answers["/picky"] = refuses_one
        async with dispatching(app):
            # 1 delivered, 3 attempts at the poison event (FAST_RETRIES: 3), 1 delivered.
            recorded = await settled(app, LEDGER, webhook_id, 5)
            (letter,) = await dead_letters(app, LEDGER, webhook_id)
            assert (letter.event_id, letter.attempts, letter.last_error) == (poison, 3, "HTTP 500")
            assert not letter.replay_requested
            assert [arrival.event_id for arrival in receiver.at("/picky")] == [
                events[0],
                poison,
                poison,
                poison,
                events[2],
            ]
            assert [attempt.outcome for attempt in recorded] == [
                AttemptOutcome.DELIVERED,
                AttemptOutcome.FAILED,
                AttemptOutcome.FAILED,
                AttemptOutcome.DEAD_LETTERED,
                AttemptOutcome.DELIVERED,
            ]

            # The partner fixed its bug: the dead letter is delivered again, and only it.
            receiver.answers.pop("/picky")
            replay = await app.container.get(ReplayDeadLettersHandler)
            assert await replay(ReplayDeadLetters(LEDGER, webhook_id)) == 1
            replayed = await settled(app, LEDGER, webhook_id, 6)

        assert receiver.at("/picky")[-1].event_id == poison
        assert (replayed[-1].outcome, replayed[-1].replay, replayed[-1].attempt) == (
            AttemptOutcome.DELIVERED,
            True,
            1,
        )
        assert await dead_letters(app, LEDGER, webhook_id) == []
        assert len(receiver.at("/picky")) == 6


async def test_a_refused_connection_is_a_failed_attempt_that_says_so(
    migrated_sqlite_url: str,
) -> None:
    async with webhook_app(migrated_sqlite_url, webhooks_max_attempts=2) as app:
        await open_books(app, LEDGER, "bank", "alice")
        nobody = f"http://127.0.0.1:{free_port()}/gone"
        hook = await register(app, LEDGER, nobody)
        await _post(app, 1)
        async with dispatching(app):
            recorded = await settled(app, LEDGER, hook.webhook.endpoint.id, 2)
        assert [attempt.outcome for attempt in recorded] == [
            AttemptOutcome.FAILED,
            AttemptOutcome.DEAD_LETTERED,
        ]
        assert all(attempt.status_code is None for attempt in recorded)
        assert all((attempt.error or "").startswith("ConnectError") for attempt in recorded)


async def test_during_a_rotations_grace_both_secrets_sign_and_then_only_the_new(
    migrated_sqlite_url: str,
) -> None:
    async with webhook_app(migrated_sqlite_url) as app, receiving() as receiver:
        await open_books(app, LEDGER, "bank", "alice")
        hook = await register(app, LEDGER, receiver.url("/rotating"))
        webhook_id = hook.webhook.endpoint.id
        rotate = await app.container.get(RotateWebhookSecretHandler)
        rotated = await rotate(RotateWebhookSecret(LEDGER, webhook_id))
        assert rotated.secret != hook.secret
        assert rotated.webhook.endpoint.secrets.previous_expires_at is not None
        async with dispatching(app):
            await app.post.post_one(LEDGER, pay("t1", "bank", "alice", 100))
            await receiver.wait_for(lambda: len(receiver.at("/rotating")) == 1)
            (during,) = receiver.at("/rotating")
            _, signatures = signatures_of(during.headers["ledgerd-signature"])
            assert len(signatures) == 2
            # Each secret verifies on its own: a receiver holding either one accepts it.
            assert signed_by(during, rotated.secret)
            assert signed_by(during, hook.secret)

            # A leaked secret: rotated with no grace, the old ones stop signing at once.
            leaked = await rotate(RotateWebhookSecret(LEDGER, webhook_id, grace=None))
            ended = await rotate(RotateWebhookSecret(LEDGER, webhook_id, grace=_NO_GRACE))
            await app.post.post_one(LEDGER, pay("t2", "bank", "alice", 100))
            await receiver.wait_for(lambda: len(receiver.at("/rotating")) == 2)
        after = receiver.at("/rotating")[1]
        _, signatures = signatures_of(after.headers["ledgerd-signature"])
        assert len(signatures) == 1
        assert signed_by(after, ended.secret)
        assert not signed_by(after, leaked.secret)
        assert not signed_by(after, hook.secret)


async def test_a_slow_endpoint_does_not_hold_up_a_healthy_one(migrated_sqlite_url: str) -> None:
    async def hangs(_arrival: Arrival) -> int:
        await asyncio.sleep(30)  # far past the timeout: every attempt times out
        return 200

    settings = {"webhooks_timeout_seconds": 1.0, "webhooks_concurrency": 2}
    async with webhook_app(migrated_sqlite_url, **settings) as app, receiving() as receiver:
        await open_books(app, LEDGER, "bank", "alice")
        slow = await register(app, LEDGER, receiver.url("/slow"))
        await register(app, LEDGER, receiver.url("/fast"))
        receiver.answers["/slow"] = hangs
        async with dispatching(app):
            events = await _post(app, 5)
            await receiver.wait_for(lambda: len(receiver.at("/fast")) == len(events))
            # Every event reached the healthy endpoint while the slow one's first request was
            # still waiting for its answer: one request so far, unanswered.
            assert [arrival.event_id for arrival in receiver.at("/fast")] == events
            assert [arrival.event_id for arrival in receiver.at("/slow")] == events[:1]
            (timed_out, *_) = await settled(app, LEDGER, slow.webhook.endpoint.id, 1)
        assert (timed_out.outcome, timed_out.status_code) == (AttemptOutcome.FAILED, None)
        assert timed_out.error == "timed out after 1 s"
        assert timed_out.duration_ms >= 1000
