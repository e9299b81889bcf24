"""UpdateAccountMetadata and BatchGetBalances on SQLite and PostgreSQL, through the container."""

import asyncio
from datetime import timedelta

import pytest

from ledgerd.kernel.errors import ErrorCode, LedgerdError
from ledgerd.kernel.money import Asset
from ledgerd.ledger.application.create_ledger import CreateLedger
from ledgerd.ledger.application.open_account import OpenAccount
from ledgerd.ledger.application.update_account_metadata import UpdateAccountMetadata
from ledgerd.ledger.domain.errors import LedgerErrorCode
from ledgerd.ledger.domain.model import Account, Balances
from ledgerd.ledger.domain.requests import LegRequest, TransferRequest
from tests.integration.conftest import LedgerApp, dump_tables

LEDGER = "books"
USD = Asset("USD", 2)
CONFLICT, INVALID = ErrorCode.CONCURRENCY_CONFLICT, ErrorCode.VALIDATION_FAILED


async def _books(app: LedgerApp) -> None:
    await app.create_ledger(CreateLedger(LEDGER))
    await app.open_account(OpenAccount(LEDGER, "bank", USD))
    await app.open_account(OpenAccount(LEDGER, "alice", USD, metadata={"tier": "gold", "n": "1"}))
    await app.open_account(OpenAccount(LEDGER, "bob", USD, metadata={"tier": "gold"}))


async def _listed(app: LedgerApp, **metadata: str) -> list[str]:
    page = await app.queries.list_accounts(LEDGER, metadata=metadata)
    return [account.id for account in page.items]


async def test_updated_metadata_is_stored_and_seen_by_the_listing_filter(
    ledger_app: LedgerApp,
) -> None:
    app = ledger_app
    await _books(app)

    updated = await app.update_metadata(
        UpdateAccountMetadata(LEDGER, "alice", {"tier": "silver", "owner": "ops"}, ("n",))
    )

    stored = await app.queries.get_account(LEDGER, "alice")
    assert stored == updated
    assert (dict(stored.metadata), stored.version) == ({"tier": "silver", "owner": "ops"}, 1)
    assert await _listed(app, tier="silver") == ["alice"]
    assert await _listed(app, tier="gold") == ["bob"]
    assert await _listed(app, owner="ops", tier="silver") == ["alice"]
    assert await _listed(app, n="1") == []  # removed


async def test_a_refused_update_leaves_every_table_as_it_was(ledger_app: LedgerApp) -> None:
    app = ledger_app
    await _books(app)
    before = await dump_tables(app.engine)

    for command, code in [
        (UpdateAccountMetadata(LEDGER, "alice", {"x": "1"}, expected_version=3), CONFLICT),
        (UpdateAccountMetadata(LEDGER, "alice", {"x": "1"}, ("x",)), INVALID),
        # 63 new keys beside the 2 it has: one more than an account may hold.
        (UpdateAccountMetadata(LEDGER, "alice", {f"k{n}": "v" for n in range(63)}), INVALID),
        (UpdateAccountMetadata(LEDGER, "ghost", {"x": "1"}), LedgerErrorCode.ACCOUNT_NOT_FOUND),
    ]:
        with pytest.raises(LedgerdError) as caught:
            await app.update_metadata(command)
        assert caught.value.code is code

    assert await dump_tables(app.engine) == before


async def test_racing_updates_at_one_expected_version_let_exactly_one_win(
    ledger_app: LedgerApp,
) -> None:
    app = ledger_app
    await _books(app)

    async def tag(value: str) -> Account | LedgerdError:
        try:
            return await app.update_metadata(
                UpdateAccountMetadata(LEDGER, "alice", {"tier": value}, expected_version=0)
            )
        except LedgerdError as error:
            return error

    outcomes = await asyncio.gather(*(tag(f"t{n}") for n in range(4)))

    won = [outcome for outcome in outcomes if isinstance(outcome, Account)]
    lost = [outcome for outcome in outcomes if isinstance(outcome, LedgerdError)]
    assert len(won) == 1
    assert {(error.code, error.details["actual_version"]) for error in lost} == {
        (ErrorCode.CONCURRENCY_CONFLICT, "1")
    }
    stored = await app.queries.get_account(LEDGER, "alice")
    assert (stored.version, stored.metadata["tier"]) == (1, won[0].metadata["tier"])


async def test_racing_updates_without_a_version_are_all_applied(ledger_app: LedgerApp) -> None:
    app = ledger_app
    await _books(app)

    await asyncio.gather(
        *(
            app.update_metadata(UpdateAccountMetadata(LEDGER, "alice", {f"k{n}": "v"}))
            for n in range(4)
        )
    )

    stored = await app.queries.get_account(LEDGER, "alice")
    assert stored.version == 4
    assert dict(stored.metadata) == {"tier": "gold", "n": "1"} | {f"k{n}": "v" for n in range(4)}


async def test_batch_balances_in_order_now_and_as_of(ledger_app: LedgerApp) -> None:
    app = ledger_app
    await _books(app)
    pay = TransferRequest("p1", (LegRequest("bank", "alice", 100),))
    await app.post.post_one(LEDGER, pay)
    before = app.clock.advance(timedelta(minutes=1))
    app.clock.advance(timedelta(minutes=1))
    await app.post.post_one(LEDGER, TransferRequest("p2", (LegRequest("alice", "bob", 30),)))

    now = await app.queries.get_balances(LEDGER, ["bob", "alice", "bob", "bank"])
    then = await app.queries.get_balances(LEDGER, ["bob", "alice"], as_of=before)

    assert [(one.account.id, one.balances) for one in now] == [
        ("bob", Balances(posted_credits=30)),
        ("alice", Balances(posted_debits=30, posted_credits=100)),
        ("bob", Balances(posted_credits=30)),
        ("bank", Balances(posted_debits=100)),
    ]
    assert [(one.account.id, one.balances, one.available) for one in then] == [
        ("bob", Balances(), 0),
        ("alice", Balances(posted_credits=100), 100),
    ]
    with pytest.raises(LedgerdError) as caught:
        await app.queries.get_balances(LEDGER, ["alice", "ghost", "nobody"])
    assert (caught.value.code, dict(caught.value.details)) == (
        LedgerErrorCode.ACCOUNT_NOT_FOUND,
        {"account": "ghost"},
    )
    with pytest.raises(LedgerdError) as caught:
        await app.queries.get_balances("nope", ["alice"])
    assert caught.value.code is LedgerErrorCode.LEDGER_NOT_FOUND
