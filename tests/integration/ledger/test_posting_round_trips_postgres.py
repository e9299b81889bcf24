"""On PostgreSQL, a posting unit of work sends as many statements for 1,000 transfers as for 10.

Each statement is a round trip (asyncpg waits for its result), so this is what makes large
batches cheap: the reads lock every touched account at once, the writes carry all their rows
in array parameters, and the balances of an account are written once however often it moved.
"""

from collections.abc import AsyncIterator

import pytest

from ledgerd.kernel.money import Asset
from ledgerd.kernel.result import Ok
from ledgerd.ledger.application.create_ledger import CreateLedger
from ledgerd.ledger.application.open_account import OpenAccount
from ledgerd.ledger.application.post_transfers import PostTransfers
from ledgerd.ledger.application.verify_ledger import VerifyLedger
from ledgerd.ledger.domain.model import Transfer
from ledgerd.ledger.domain.requests import (
    CaptureRequest,
    LegRequest,
    PostingRequest,
    TransferRequest,
    VoidRequest,
)
from tests.integration.conftest import LedgerApp, open_ledger_app
from tests.integration.statements import StatementLog, count_statements

LEDGER = "round-trips"
USD = Asset("USD", 2)
BANK = "bank"
ACCOUNTS = tuple(f"acct-{number:03d}" for number in range(150))
SMALL, LARGE = 10, 1_000


@pytest.fixture
async def app(migrated_postgres_url: str) -> AsyncIterator[LedgerApp]:
    async with open_ledger_app(migrated_postgres_url) as app:
        await app.create_ledger(CreateLedger(LEDGER, "round trips"))
        for account_id in (BANK, *ACCOUNTS):
            await app.open_account(OpenAccount(LEDGER, account_id, USD))
        yield app


def _pay(key: str, debit: str, credit: str, *, pending: bool = False) -> TransferRequest:
    return TransferRequest(key, (LegRequest(debit, credit, 1_00),), pending=pending)


async def _post(app: LedgerApp, requests: list[PostingRequest]) -> list[Transfer]:
    outcome = await app.post(PostTransfers(LEDGER, requests))
    assert all(isinstance(result, Ok) for result in outcome), outcome
    return [result.value.transfer for result in outcome if isinstance(result, Ok)]


async def _holds(app: LedgerApp, name: str, count: int) -> list[Transfer]:
    return await _post(
        app,
        [
            _pay(f"{name}-hold-{n}", BANK, ACCOUNTS[n % len(ACCOUNTS)], pending=True)
            for n in range(count)
        ],
    )


def _batch(name: str, size: int, holds: list[Transfer]) -> list[PostingRequest]:
    """``size`` requests of every kind that writes: postings, captures and voids of holds.

    The postings move money across the accounts and back, so a larger batch also changes
    more accounts, and most accounts more than once.
    """
    settlements = size // 2
    requests: list[PostingRequest] = [
        CaptureRequest(hold.id) if n % 2 else VoidRequest(hold.id)
        for n, hold in enumerate(holds[:settlements])
    ]
    for n in range(size - settlements):
        account = ACCOUNTS[n % len(ACCOUNTS)]
        other = ACCOUNTS[(n * 7 + 1) % len(ACCOUNTS)]
        requests.append(
            _pay(f"{name}-pay-{n}", BANK, account)
            if n % 3 or account == other
            else _pay(f"{name}-pay-{n}", account, other)
        )
    return requests


async def _statements_of(app: LedgerApp, log: StatementLog, command: PostTransfers) -> list[str]:
    start = log.count
    outcome = await app.post(command)
    assert all(isinstance(result, Ok) for result in outcome), outcome
    return log.since(start)


async def test_a_large_batch_costs_the_statements_of_a_small_one(app: LedgerApp) -> None:
    small_holds = await _holds(app, "small", SMALL)
    large_holds = await _holds(app, "large", LARGE)
    # Money in every account first, so the postings out of them are accepted.
    await _post(app, [_pay(f"fund-{account}", BANK, account) for account in ACCOUNTS])
    log = count_statements(app.engine)

    small = await _statements_of(
        app, log, PostTransfers(LEDGER, _batch("small", SMALL, small_holds))
    )
    large = await _statements_of(
        app, log, PostTransfers(LEDGER, _batch("large", LARGE, large_holds))
    )

    report = "\n".join(statement.split("\n", 1)[0][:100] for statement in large)
    assert len(large) == len(small), f"{len(small)} vs {len(large)} statements:\n{report}"
    # The batches did write: new transfers, entries, balances and settled holds.
    for table in ("transfers", "entries"):
        assert any(s.startswith(f"INSERT INTO {table} ") for s in large), report
    for table in ("accounts", "transfers"):
        assert any(s.startswith(f"UPDATE {table} ") for s in large), report
    report_after = await app.verify(VerifyLedger(LEDGER))
    assert report_after.ok, report_after.problems
