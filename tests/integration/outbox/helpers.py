"""Shared by the outbox tests: a small ledger's worth of changes, and reading events back."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

from google.protobuf.message import Message

from ledgerd.kernel.money import Asset
from ledgerd.ledger.adapters.event_outbox import SqlEventOutbox
from ledgerd.ledger.application.change_account_status import ChangeAccountStatus
from ledgerd.ledger.application.create_ledger import CreateLedger
from ledgerd.ledger.application.expire_pending import ExpirePending
from ledgerd.ledger.application.open_account import OpenAccount
from ledgerd.ledger.application.update_account_metadata import UpdateAccountMetadata
from ledgerd.ledger.domain.events import LedgerEvent
from ledgerd.ledger.domain.model import AccountFlags, AccountStatus
from ledgerd.ledger.domain.requests import (
    CaptureRequest,
    LegRequest,
    ReversalRequest,
    TransferRequest,
    VoidRequest,
)
from ledgerd.ledger.published.events import decode_envelope
from ledgerd.platform.messaging.envelope import Envelope
from ledgerd.platform.messaging.hub import HubSubscription
from ledgerd.platform.messaging.ports import BrokerUnavailableError, EventRejectedError, Publisher
from tests.integration.conftest import LedgerApp

USD = Asset("USD", 2)


class CrashBeforeCommitError(Exception):
    pass


class OutboxThenCrash(SqlEventOutbox):
    """The real outbox, after which the process "dies" before the unit of work commits."""

    async def record(self, events: Sequence[LedgerEvent]) -> None:
        await super().record(events)
        raise CrashBeforeCommitError


DELIVERY_WAIT_S = 30.0  # a bound for a hung relay to fail the test, not a measurement

# Every kind of change, in the order `make_every_change` makes them.
EVERY_CHANGE = [
    "ledgerd.v1.LedgerCreated",
    "ledgerd.v1.AccountCreated",
    "ledgerd.v1.AccountCreated",
    "ledgerd.v1.TransferPosted",
    "ledgerd.v1.PendingCreated",
    "ledgerd.v1.PendingCaptured",
    "ledgerd.v1.PendingCreated",
    "ledgerd.v1.PendingVoided",
    "ledgerd.v1.PendingCreated",
    "ledgerd.v1.PendingExpired",
    "ledgerd.v1.TransferReversed",
    "ledgerd.v1.AccountMetadataChanged",
    "ledgerd.v1.AccountFrozen",
    "ledgerd.v1.AccountUnfrozen",
    "ledgerd.v1.AccountClosed",
]


def pay(  # noqa: PLR0913 - a transfer's fields, for readable test set-ups
    key: str,
    debit: str,
    credit: str,
    amount: int,
    *,
    pending: bool = False,
    timeout_seconds: int = 0,
) -> TransferRequest:
    return TransferRequest(
        key, (LegRequest(debit, credit, amount),), pending=pending, timeout_seconds=timeout_seconds
    )


async def open_books(app: LedgerApp, ledger: str, *accounts: str) -> None:
    await app.create_ledger(CreateLedger(ledger, ledger))
    for account in accounts:
        await app.open_account(OpenAccount(ledger, account, USD, AccountFlags()))


async def make_every_change(app: LedgerApp, ledger: str) -> None:
    """One change of every kind the ledger publishes an event for (see EVERY_CHANGE)."""
    await open_books(app, ledger, "bank", "alice")
    posted = await app.post.post_one(ledger, pay("p1", "bank", "alice", 500))
    hold = await app.post.post_one(ledger, pay("h1", "bank", "alice", 300, pending=True))
    await app.post.post_one(ledger, CaptureRequest(hold.transfer.id, amount=200))
    hold = await app.post.post_one(ledger, pay("h2", "bank", "alice", 100, pending=True))
    await app.post.post_one(ledger, VoidRequest(hold.transfer.id))
    await app.post.post_one(ledger, pay("h3", "bank", "alice", 50, pending=True, timeout_seconds=5))
    app.clock.advance(timedelta(seconds=6))
    assert await app.expire(ExpirePending()) == 1
    await app.post.post_one(ledger, ReversalRequest(posted.transfer.id))
    await app.update_metadata(UpdateAccountMetadata(ledger, "alice", {"tier": "gold"}))
    for status in (AccountStatus.FROZEN, AccountStatus.OPEN, AccountStatus.CLOSED):
        await app.change_status(ChangeAccountStatus(ledger, "alice", status))


async def receive(subscription: HubSubscription, count: int) -> list[Envelope]:
    """The next ``count`` envelopes from an in-process subscription, or fail."""
    received: list[Envelope] = []
    deliveries = subscription.deliveries()
    try:
        async with asyncio.timeout(DELIVERY_WAIT_S):
            while len(received) < count:
                delivery = await anext(deliveries)
                assert delivery.envelope is not None
                received.append(delivery.envelope)
                await delivery.ack()
    finally:
        await deliveries.aclose()
    return received


def payloads(envelopes: Sequence[Envelope]) -> list[Message]:
    return [decode_envelope(envelope) for envelope in envelopes]


class FlakyPublisher:
    """A fake broker edge around a real publisher: fails on demand, as a broker would.

    ``unavailable`` calls fail with BrokerUnavailableError before reaching the broker;
    envelopes whose id is in ``refused`` are refused (EventRejectedError) every time; a set
    ``gate`` holds every publish until it is set (to kill a relay mid-publish).
    """

    def __init__(self, inner: Publisher) -> None:
        self.inner = inner
        self.unavailable = 0
        self.refused: set[str] = set()
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()
        self.calls = 0

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        self.calls += 1
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.unavailable:
            self.unavailable -= 1
            msg = "connection refused (fake outage)"
            raise BrokerUnavailableError(msg)
        for envelope in envelopes:
            if envelope.id in self.refused:
                msg = "message too large (fake refusal)"
                raise EventRejectedError(msg, event_id=envelope.id)
        await self.inner.publish(envelopes)

    async def aclose(self) -> None:
        await self.inner.aclose()
