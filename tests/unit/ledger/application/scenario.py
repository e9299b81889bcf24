"""Helpers the application tests share: a ledger with accounts, on the fakes."""

from __future__ import annotations

from ledgerd.kernel.errors import LedgerdError
from ledgerd.kernel.metadata import Metadata
from ledgerd.kernel.money import Asset
from ledgerd.kernel.result import Err, Ok
from ledgerd.ledger.application.create_ledger import CreateLedger
from ledgerd.ledger.application.open_account import OpenAccount
from ledgerd.ledger.application.post_transfers import PostingResult
from ledgerd.ledger.domain.model import Account, AccountFlags
from ledgerd.ledger.domain.posting import Posted
from ledgerd.ledger.domain.requests import LegRequest, TransferRequest
from tests.fakes.ledger_app import LedgerApp

LEDGER = "L"
USD = Asset("USD", 2)
EUR = Asset("EUR", 2)
FUNDED = AccountFlags(debits_must_not_exceed_credits=True)


async def create_ledger(app: LedgerApp, ledger_id: str = LEDGER) -> None:
    await app.create_ledger(CreateLedger(ledger_id=ledger_id, name=f"ledger {ledger_id}"))


async def open_account(  # noqa: PLR0913 - mirrors OpenAccount's fields
    app: LedgerApp,
    account_id: str,
    *,
    asset: Asset = USD,
    flags: AccountFlags | None = None,
    metadata: Metadata | None = None,
    ledger_id: str = LEDGER,
) -> Account:
    return await app.open_account(
        OpenAccount(
            ledger_id=ledger_id,
            account_id=account_id,
            asset=asset,
            flags=flags or AccountFlags(),
            metadata=metadata or {},
        )
    )


def pay(
    key: str, *legs: tuple[str, str, int], pending: bool = False, timeout: int = 0
) -> TransferRequest:
    return TransferRequest(
        idempotency_key=key,
        legs=tuple(LegRequest(debit, credit, amount) for debit, credit, amount in legs),
        pending=pending,
        timeout_seconds=timeout,
    )


def ok(result: PostingResult) -> Posted:
    assert isinstance(result, Ok), result
    return result.value


def err(result: PostingResult) -> LedgerdError:
    assert isinstance(result, Err), result
    return result.error


def account(app: LedgerApp, account_id: str, ledger_id: str = LEDGER) -> Account:
    """The stored row, read straight from the fake database."""
    return app.tables.accounts[ledger_id, account_id]
