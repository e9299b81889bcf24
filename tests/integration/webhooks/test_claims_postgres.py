"""Dispatchers on PostgreSQL: never two at one endpoint at once, and woken by any commit.

Each dispatcher has a container (an engine, a pool) of its own, as two ``ledgerd worker``
processes would, and may serve one attempt at a time, so neither can hold every endpoint and
both must take turns at them. Each tags its requests, so the receiver can tell who sent what.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Mapping

from dishka import Provider, Scope, provide

from ledgerd.main.contexts.webhooks import address_policy, delivering
from ledgerd.main.settings import Settings
from ledgerd.platform.outbox.store import OutboxStore
from ledgerd.webhooks.adapters.http_sender import HttpWebhookSender
from ledgerd.webhooks.application.dispatch import WebhookDispatcher
from ledgerd.webhooks.domain.deliveries import Response
from tests.integration.conftest import LedgerApp, open_ledger_app
from tests.integration.outbox.helpers import open_books, pay
from tests.integration.webhooks.support import FAST_RETRIES, dispatching, register, settled
from tests.webhook_receiver import Arrival, receiving

LEDGER = "books"
ENDPOINTS = ("/one", "/two", "/three")
EVENTS = 12
DISPATCHER_HEADER = "x-test-dispatcher"


class TaggingSender(HttpWebhookSender):
    """The real sender, adding a header that names the dispatcher sending."""

    def __init__(self, tag: str, settings: Settings) -> None:
        super().__init__(
            timeout_s=settings.webhooks_timeout_seconds,
            max_connections=settings.webhooks_concurrency,
            addresses=address_policy(settings),
        )
        self._tag = tag

    async def post(self, url: str, headers: Mapping[str, str], body: bytes) -> Response:
        return await super().post(url, {**headers, DISPATCHER_HEADER: self._tag}, body)


class TaggedDispatcher(Provider):
    scope = Scope.APP

    def __init__(self, tag: str) -> None:
        super().__init__()
        self._tag = tag

    @provide(override=True)
    async def sender(self, settings: Settings) -> AsyncIterator[HttpWebhookSender]:
        sender = TaggingSender(self._tag, settings)
        yield sender
        await sender.aclose()


@contextlib.asynccontextmanager
async def _worker(url: str, tag: str, *, migrate: bool) -> AsyncIterator[LedgerApp]:
    settings = {**FAST_RETRIES, "webhooks_concurrency": 1}
    async with open_ledger_app(
        url, settings=settings, migrate=migrate, overrides=(TaggedDispatcher(tag),)
    ) as app:
        yield app


async def test_two_dispatchers_never_deliver_to_one_endpoint_at_once(postgres_url: str) -> None:
    in_flight: Counter[str] = Counter()
    overlaps: list[str] = []

    async def one_at_a_time(arrival: Arrival) -> int:
        in_flight[arrival.path] += 1
        if in_flight[arrival.path] > 1:
            overlaps.append(arrival.path)
        await asyncio.sleep(0.01)  # long enough for the other dispatcher to try this endpoint
        in_flight[arrival.path] -= 1
        return 200

    async with (
        _worker(postgres_url, "a", migrate=True) as first,
        _worker(postgres_url, "b", migrate=False) as second,
        receiving() as receiver,
    ):
        await open_books(first, LEDGER, "bank", "alice")
        hooks = [await register(first, LEDGER, receiver.url(path)) for path in ENDPOINTS]
        for path in ENDPOINTS:
            receiver.answers[path] = one_at_a_time
        for number in range(EVENTS):
            await first.post.post_one(LEDGER, pay(f"t{number}", "bank", "alice", 100))
        written = await (await first.container.get(OutboxStore)).read(LEDGER, after=3)
        async with dispatching(first), dispatching(second):
            for hook in hooks:
                await settled(first, LEDGER, hook.webhook.endpoint.id, EVENTS)

    assert overlaps == []
    for path in ENDPOINTS:
        # Each event once, in the ledger's order, whoever delivered it.
        assert [arrival.event_id for arrival in receiver.at(path)] == [e.id for e in written]
    senders = Counter(arrival.headers[DISPATCHER_HEADER] for arrival in receiver.arrivals)
    assert set(senders) == {"a", "b"}, senders  # both took turns, so the claims were contended


async def test_a_commit_in_another_process_wakes_the_dispatcher_through_notify(
    postgres_url: str,
) -> None:
    """A dispatcher polling only once a minute delivers at once: PostgreSQL's NOTIFY woke it."""
    slow_poll = {**FAST_RETRIES, "webhooks_poll_interval_seconds": 60.0}
    async with (
        open_ledger_app(postgres_url, settings=slow_poll) as api,
        open_ledger_app(postgres_url, settings=slow_poll, migrate=False) as worker,
        receiving() as receiver,
    ):
        await open_books(api, LEDGER, "bank", "alice")
        await register(api, LEDGER, receiver.url("/woken"))
        settings = await worker.container.get(Settings)
        async with delivering(worker.container, settings, "worker"):
            # The listener wakes a round when it connects: let that pass (its rounds quiet for
            # a while), then commit in the other container, whose in-process wake-up the
            # worker never hears.
            dispatcher = await worker.container.get(WebhookDispatcher)
            while True:
                seen = dispatcher.rounds.version
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        await dispatcher.rounds.changed(since=seen)
                        continue
                if seen > 0:
                    break
            await api.post.post_one(LEDGER, pay("t1", "bank", "alice", 100))
            await receiver.wait_for(lambda: len(receiver.at("/woken")) == 1, timeout_s=15)
