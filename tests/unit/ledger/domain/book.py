"""A small harness around ``PostingSession`` for the domain tests."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime, timedelta

import pytest

from ledgerd.kernel.errors import LedgerdError
from ledgerd.kernel.money import Asset
from ledgerd.ledger.domain.model import (
    Account,
    AccountFlags,
    AccountStatus,
    Balances,
    Entry,
    LedgerHead,
    Transfer,
    new_account,
)
from ledgerd.ledger.domain.posting import Posted, PostingSession, PostingSnapshot
from ledgerd.ledger.domain.requests import LegRequest, PostingRequest, TransferRequest
from tests.fakes.clock import START
from tests.fakes.ids import SequentialIds

LEDGER = "L"
USD = Asset("USD", 2)
EUR = Asset("EUR", 2)
FUNDED = AccountFlags(debits_must_not_exceed_credits=True)


def make_account(  # noqa: PLR0913 - every attribute a test may want to set
    account_id: str,
    *,
    asset: Asset = USD,
    flags: AccountFlags | None = None,
    status: AccountStatus = AccountStatus.OPEN,
    balances: Balances | None = None,
    entry_count: int = 0,
) -> Account:
    account = new_account(LEDGER, account_id, asset, START, flags=flags)
    return dataclasses.replace(
        account, status=status, balances=balances or Balances(), entry_count=entry_count
    )


def pay(
    key: str,
    *legs: tuple[str, str, int],
    pending: bool = False,
    timeout: int = 0,
    asset: Asset | None = None,
) -> TransferRequest:
    return TransferRequest(
        idempotency_key=key,
        legs=tuple(LegRequest(debit, credit, amount, asset) for debit, credit, amount in legs),
        pending=pending,
        timeout_seconds=timeout,
    )


class Book:
    """One ledger's state as a session leaves it; ``later()`` continues at another instant.

    Between sessions it does what the application does: the next snapshot holds the changed
    accounts, the settled statuses and every transfer (so replays are found by key).
    """

    def __init__(self, *accounts: Account, now: datetime = START) -> None:
        self.ids = SequentialIds()
        self.snapshot = PostingSnapshot(
            head=LedgerHead(LEDGER), accounts={a.id: a for a in accounts}, transfers={}
        )
        self.now = now
        self.session = PostingSession(self.snapshot, now=now, new_id=self.ids)
        self.journal: list[Entry] = []

    def post(self, request: PostingRequest) -> Transfer:
        posted = self.session.post(request)
        assert not posted.replayed
        return posted.transfer

    def replay(self, request: PostingRequest) -> Posted:
        return self.session.post(request)

    def fail(self, request: PostingRequest) -> LedgerdError:
        with pytest.raises(LedgerdError) as caught:
            self.session.post(request)
        return caught.value

    def account(self, account_id: str) -> Account:
        changed = {account.id: account for account, _ in self.session.changed_accounts()}
        return changed.get(account_id) or self.snapshot.accounts[account_id]

    def balances(self, account_id: str) -> Balances:
        return self.account(account_id).balances

    def transfers(self) -> dict[str, Transfer]:
        transfers = dict(self.snapshot.transfers)
        for before, status in self.session.status_changes():
            transfers[before.id] = dataclasses.replace(before, status=status)
        transfers.update({t.id: t for t in self.session.new_transfers})
        return transfers

    def transfer(self, transfer_id: str) -> Transfer:
        return self.transfers()[transfer_id]

    def later(self, delta: timedelta = timedelta(0)) -> None:
        """Close this session (as a commit would) and open the next one ``delta`` later."""
        accounts = dict(self.snapshot.accounts)
        accounts.update({a.id: a for a, _ in self.session.changed_accounts()})
        self.snapshot = PostingSnapshot(
            head=self.session.head, accounts=accounts, transfers=self.transfers()
        )
        self.journal.extend(self.session.entries)
        self.now += delta
        self.session = PostingSession(self.snapshot, now=self.now, new_id=self.ids)

    def all_entries(self) -> list[Entry]:
        return [*self.journal, *self.session.entries]

    def state(self) -> tuple[object, ...]:
        """Everything a session would hand back to be written."""
        session = self.session
        return (
            session.head,
            session.new_transfers,
            session.entries,
            session.changed_accounts(),
            session.status_changes(),
        )


def funded(
    account_id: str, amount: int, *, flags: AccountFlags = FUNDED, asset: Asset = USD
) -> Account:
    """An account whose posted credits already hold ``amount`` (as if paid in earlier)."""
    return make_account(
        account_id, asset=asset, flags=flags, balances=Balances(posted_credits=amount)
    )


def entries_of(entries: Iterable[Entry], account_id: str) -> list[Entry]:
    return [entry for entry in entries if entry.account_id == account_id]
