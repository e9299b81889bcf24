"""Deliveries reach only public addresses and the networks allowed, checked when connecting.

A real receiver on 127.0.0.1 and the real dispatcher and sender: by default (no
LEDGERD_WEBHOOKS_ALLOWED_NETWORKS) nothing reaches it, each attempt is a recorded failure that
says why, and the event is retried and dead-lettered like any failure; with 127.0.0.0/8
allowed, the same event is delivered. A host name (``localhost``) is judged by the addresses it
resolves to, when connecting.
"""

from __future__ import annotations

import ipaddress

from ledgerd.webhooks.domain.deliveries import AttemptOutcome
from tests.integration.conftest import LedgerApp, open_ledger_app
from tests.integration.outbox.helpers import open_books, pay
from tests.integration.webhooks.support import (
    FAST_RETRIES,
    dead_letters,
    dispatching,
    register,
    settled,
    webhook_app,
)
from tests.webhook_receiver import receiving

LEDGER = "books"
NOT_ALLOWED = "is not a public address (LEDGERD_WEBHOOKS_ALLOWED_NETWORKS)"
# The default (public addresses only), over the test helper's loopback.
PUBLIC_ONLY = {**FAST_RETRIES, "webhooks_allowed_networks": ""}


async def _refused_attempts(app: LedgerApp, webhook: str, count: int) -> list[str]:
    async with dispatching(app):
        recorded = await settled(app, LEDGER, webhook, count)
    assert [attempt.status_code for attempt in recorded] == [None] * count
    # Retried and dead-lettered (FAST_RETRIES: 3 attempts) as any failure is.
    assert [attempt.outcome for attempt in recorded] == (
        [AttemptOutcome.FAILED] * (count - 1) + [AttemptOutcome.DEAD_LETTERED]
    )
    return [attempt.error or "" for attempt in recorded]


async def test_a_loopback_receiver_is_refused_by_default_and_reached_once_allowed(
    migrated_sqlite_url: str,
) -> None:
    async with receiving() as receiver:
        # Registered while loopback was allowed (a registration would refuse the IP otherwise),
        # then delivered by a dispatcher with the default: public addresses only.
        async with webhook_app(migrated_sqlite_url) as app:
            await open_books(app, LEDGER, "bank", "alice")
            hook = await register(app, LEDGER, receiver.url("/in"))
            webhook = hook.webhook.endpoint.id
            await app.post.post_one(LEDGER, pay("t1", "bank", "alice", 100))
        async with open_ledger_app(migrated_sqlite_url, settings=PUBLIC_ONLY, migrate=False) as app:
            errors = await _refused_attempts(app, webhook, 3)
            assert errors == [f"refused: 127.0.0.1 {NOT_ALLOWED}"] * 3
            [dead] = await dead_letters(app, LEDGER, webhook)
            assert dead.last_error == f"refused: 127.0.0.1 {NOT_ALLOWED}"
        assert receiver.arrivals == []  # not a byte reached it

        async with open_ledger_app(
            migrated_sqlite_url, settings=FAST_RETRIES, migrate=False
        ) as app:
            await app.post.post_one(LEDGER, pay("t2", "bank", "alice", 200))
            async with dispatching(app):
                recorded = await settled(app, LEDGER, webhook, 4)
        assert recorded[-1].outcome is AttemptOutcome.DELIVERED
        assert [arrival.path for arrival in receiver.arrivals] == ["/in"]


async def test_a_host_name_resolving_to_loopback_is_refused_the_same_way(
    migrated_sqlite_url: str,
) -> None:
    async with (
        receiving() as receiver,
        open_ledger_app(migrated_sqlite_url, settings=PUBLIC_ONLY) as app,
    ):
        await open_books(app, LEDGER, "bank", "alice")
        # A name is not resolved at registration: it is accepted, and judged when connecting.
        url = receiver.url("/in").replace("127.0.0.1", "localhost")
        hook = await register(app, LEDGER, url)
        await app.post.post_one(LEDGER, pay("t1", "bank", "alice", 100))
        errors = await _refused_attempts(app, hook.webhook.endpoint.id, 3)
    assert receiver.arrivals == []
    for error in errors:
        refused, address, reason = error.split(" ", 2)
        assert refused == "refused:", error
        assert ipaddress.ip_address(address).is_loopback, error  # 127.0.0.1 or ::1
        assert reason == NOT_ALLOWED, error
