"""The ledger's use cases end to end on SQLite and PostgreSQL, through the real container."""

import asyncio
import itertools
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from ledgerd.kernel.errors import ErrorCode, LedgerdError
from ledgerd.kernel.money import MAX_AMOUNT, Asset
from ledgerd.kernel.result import Err, Ok
from ledgerd.ledger.adapters import tables
from ledgerd.ledger.application.change_account_status import ChangeAccountStatus
from ledgerd.ledger.application.create_ledger import CreateLedger
from ledgerd.ledger.application.expire_pending import ExpirePending
from ledgerd.ledger.application.open_account import OpenAccount
from ledgerd.ledger.application.post_transfers import PostingResult, PostTransfers
from ledgerd.ledger.application.verify_ledger import VerifyLedger
from ledgerd.ledger.domain.errors import LedgerErrorCode
from ledgerd.ledger.domain.model import (
    AccountFlags,
    AccountStatus,
    Balances,
    Entry,
    Transfer,
    TransferKind,
    TransferStatus,
)
from ledgerd.ledger.domain.requests import (
    MAX_LEGS,
    CaptureRequest,
    LegRequest,
    PostingRequest,
    ReversalRequest,
    TransferRequest,
    VoidRequest,
)
from tests.integration.conftest import LedgerApp, dump_tables

LEDGER = "books"
USD = Asset("USD", 2)
EUR = Asset("EUR", 2)
WALLET = AccountFlags(debits_must_not_exceed_credits=True)
BANK = AccountFlags(credits_must_not_exceed_debits=True)
LEDGERD = Path(sys.executable).parent / "ledgerd"
CLI_TIMEOUT_S = 60


def _pay(key: str, debit: str, credit: str, amount: int, **options: Any) -> TransferRequest:  # noqa: ANN401 - passed through to TransferRequest
    return TransferRequest(key, (LegRequest(debit, credit, amount),), **options)


async def _open_books(app: LedgerApp, *accounts: tuple[str, Asset, AccountFlags]) -> None:
    await app.create_ledger(CreateLedger(LEDGER, "books"))
    for account_id, asset, flags in accounts:
        await app.open_account(OpenAccount(LEDGER, account_id, asset, flags))


async def _post(app: LedgerApp, request: PostingRequest) -> Transfer:
    posted = await app.post.post_one(LEDGER, request)
    assert not posted.replayed
    return posted.transfer


async def _balances(app: LedgerApp, account_id: str) -> Balances:
    return (await app.queries.get_balance(LEDGER, account_id)).balances


async def _status(app: LedgerApp, transfer: Transfer) -> TransferStatus:
    return (await app.queries.get_transfer(LEDGER, transfer.id)).status


async def _assert_verified(app: LedgerApp) -> None:
    report = await app.verify(VerifyLedger(LEDGER))
    assert report.problems == []
    assert report.ok
    for asset, totals in report.totals.items():
        assert totals.balanced, asset


# --- the whole life of a ledger --------------------------------------------------------------


async def test_lifecycle_with_exact_balances(ledger_app: LedgerApp) -> None:  # noqa: PLR0915 - one story, told in order
    app = ledger_app
    start = app.clock.now()
    await _open_books(
        app,
        ("bank", USD, BANK),
        ("alice", USD, WALLET),
        ("bob", USD, WALLET),
        ("shop", USD, AccountFlags()),
    )
    ledger = await app.queries.get_ledger(LEDGER)
    assert (ledger.id, ledger.name, ledger.created_at) == (LEDGER, "books", start)

    await app.post(
        PostTransfers(
            LEDGER, [_pay("dep-a", "bank", "alice", 100_00), _pay("dep-b", "bank", "bob", 50_00)]
        )
    )
    assert await _balances(app, "bank") == Balances(posted_debits=150_00)
    assert await _balances(app, "alice") == Balances(posted_credits=100_00)
    # The bank is debit-normal: what it has handed out is what it is "available" for.
    assert (await app.queries.get_balance(LEDGER, "bank")).available == 150_00

    payment = await _post(app, _pay("pay-1", "alice", "shop", 30_00))
    assert (payment.kind, payment.status) == (TransferKind.POSTING, TransferStatus.POSTED)

    # A hold, captured in full.
    hold_1 = await _post(app, _pay("hold-1", "alice", "shop", 20_00, pending=True))
    assert (hold_1.kind, hold_1.status) == (TransferKind.PENDING, TransferStatus.PENDING)
    assert await _balances(app, "alice") == Balances(30_00, 100_00, 20_00, 0)
    assert await _balances(app, "shop") == Balances(0, 30_00, 0, 20_00)
    assert (await app.queries.get_balance(LEDGER, "alice")).available == 50_00
    capture_1 = await _post(app, CaptureRequest(hold_1.id))
    assert (capture_1.kind, capture_1.target_id) == (TransferKind.CAPTURE, hold_1.id)
    assert await _status(app, hold_1) is TransferStatus.CAPTURED
    assert await _balances(app, "alice") == Balances(50_00, 100_00, 0, 0)

    # A hold, captured in part: the rest is released.
    hold_2 = await _post(app, _pay("hold-2", "bob", "shop", 10_00, pending=True))
    capture_2 = await _post(app, CaptureRequest(hold_2.id, amount=4_00))
    assert [leg.amount for leg in capture_2.legs] == [4_00]
    assert await _balances(app, "bob") == Balances(4_00, 50_00, 0, 0)

    # A hold, voided.
    hold_3 = await _post(app, _pay("hold-3", "bob", "shop", 5_00, pending=True))
    void_3 = await _post(app, VoidRequest(hold_3.id))
    assert void_3.kind is TransferKind.VOID
    assert await _status(app, hold_3) is TransferStatus.VOIDED
    assert await _balances(app, "bob") == Balances(4_00, 50_00, 0, 0)

    # A hold that times out, and one that does not (yet).
    hold_4 = await _post(
        app, _pay("hold-4", "alice", "shop", 7_00, pending=True, timeout_seconds=60)
    )
    assert hold_4.expires_at == app.clock.now() + timedelta(seconds=60)
    hold_5 = await _post(
        app, _pay("hold-5", "alice", "shop", 3_00, pending=True, timeout_seconds=3600)
    )
    app.clock.advance(timedelta(seconds=59))
    assert await app.expire(ExpirePending()) == 0
    app.clock.advance(timedelta(seconds=1))
    assert await app.expire(ExpirePending()) == 1
    assert await app.expire(ExpirePending()) == 0
    assert await _status(app, hold_4) is TransferStatus.EXPIRED
    assert await _status(app, hold_5) is TransferStatus.PENDING
    assert await _balances(app, "alice") == Balances(50_00, 100_00, 3_00, 0)

    # A reversal puts the payment back.
    reversal = await _post(app, ReversalRequest(payment.id))
    assert reversal.kind is TransferKind.REVERSAL
    assert [(leg.debit_account, leg.credit_account, leg.amount) for leg in reversal.legs] == [
        ("shop", "alice", 30_00)
    ]
    assert await _status(app, payment) is TransferStatus.REVERSED

    # Freeze, unfreeze, close.
    frozen = await app.change_status(ChangeAccountStatus(LEDGER, "bob", AccountStatus.FROZEN))
    assert frozen.status is AccountStatus.FROZEN
    with pytest.raises(LedgerdError) as refused:
        await app.post.post_one(LEDGER, _pay("bob-1", "bob", "shop", 1_00))
    assert refused.value.code is LedgerErrorCode.ACCOUNT_FROZEN
    await app.change_status(ChangeAccountStatus(LEDGER, "bob", AccountStatus.OPEN))
    await _post(app, _pay("bob-1", "bob", "shop", 1_00))
    await app.change_status(ChangeAccountStatus(LEDGER, "bob", AccountStatus.CLOSED))
    with pytest.raises(LedgerdError) as refused:
        await app.post.post_one(LEDGER, _pay("bob-2", "shop", "bob", 1_00))
    assert refused.value.code is LedgerErrorCode.ACCOUNT_CLOSED
    with pytest.raises(LedgerdError) as refused:
        await app.change_status(ChangeAccountStatus(LEDGER, "bob", AccountStatus.OPEN))
    assert refused.value.code is LedgerErrorCode.ACCOUNT_CLOSED
    with pytest.raises(LedgerdError) as refused:
        await app.change_status(ChangeAccountStatus(LEDGER, "alice", AccountStatus.CLOSED))
    assert refused.value.code is LedgerErrorCode.ACCOUNT_HAS_PENDING

    expected = {
        "bank": Balances(150_00, 0, 0, 0),
        "alice": Balances(50_00, 130_00, 3_00, 0),
        "bob": Balances(5_00, 50_00, 0, 0),
        "shop": Balances(30_00, 55_00, 0, 3_00),
    }
    for account_id, balances in expected.items():
        assert await _balances(app, account_id) == balances, account_id
    assert (await app.queries.get_balance(LEDGER, "alice")).available == 77_00
    assert (await app.queries.get_account(LEDGER, "bob")).status is AccountStatus.CLOSED

    report = await app.verify(VerifyLedger(LEDGER))
    assert report.problems == []
    assert (report.transfers, report.accounts) == (14, 4)
    usd = report.totals[str(USD)]
    assert (usd.posted_debits, usd.posted_credits) == (235_00, 235_00)
    assert (usd.pending_debits, usd.pending_credits) == (3_00, 3_00)

    # Sequence numbers are gap-free, and every record follows its predecessor in the chain.
    async with app.engine.connect() as connection:
        rows = (
            await connection.execute(
                select(
                    tables.transfers.c.sequence,
                    tables.transfers.c.prev_hash,
                    tables.transfers.c.hash,
                ).order_by(tables.transfers.c.sequence)
            )
        ).all()
    assert [row.sequence for row in rows] == list(range(1, 15))
    assert all(row.prev_hash == before.hash for before, row in itertools.pairwise(rows))


async def test_idempotent_replay_returns_the_original_and_writes_nothing(
    ledger_app: LedgerApp,
) -> None:
    app = ledger_app
    await _open_books(app, ("a", USD, AccountFlags()), ("b", USD, AccountFlags()))
    request = _pay("once", "a", "b", 5_00, metadata={"order": "o-1"})
    first = await app.post.post_one(LEDGER, request)
    hold = await _post(app, _pay("hold", "a", "b", 2_00, pending=True))
    capture = await app.post.post_one(LEDGER, CaptureRequest(hold.id))
    before = await dump_tables(app.engine)

    app.clock.advance(timedelta(hours=1))
    again = await app.post.post_one(LEDGER, _pay("once", "a", "b", 5_00, metadata={"order": "o-1"}))
    assert again.replayed
    assert again.transfer == first.transfer
    capture_again = await app.post.post_one(LEDGER, CaptureRequest(hold.id))
    assert capture_again.replayed
    assert capture_again.transfer == capture.transfer
    # A replay inside a batch is a replay too; its neighbour is posted normally.
    results = await app.post(PostTransfers(LEDGER, [request, _pay("new", "a", "b", 1)]))
    assert isinstance(results[0], Ok)
    assert results[0].value.replayed
    assert results[0].value.transfer == first.transfer
    assert isinstance(results[1], Ok)
    assert not results[1].value.replayed

    after = await dump_tables(app.engine)
    new_rows = {
        name: [row for row in rows if row not in before[name]] for name, rows in after.items()
    }
    assert len(new_rows["transfers"]) == 1
    assert len(new_rows["entries"]) == 2
    assert await _balances(app, "b") == Balances(0, 5_00 + 2_00 + 1, 0, 0)


async def test_balance_as_of_past_instants(ledger_app: LedgerApp) -> None:
    app = ledger_app
    await _open_books(app, ("a", USD, AccountFlags()), ("b", USD, AccountFlags()))
    before_anything = app.clock.now()
    instants: list[datetime] = []
    for n, amount in enumerate((1_00, 2_00, 4_00), start=1):
        app.clock.advance(timedelta(minutes=1, microseconds=n))
        instants.append(app.clock.now())
        await _post(app, _pay(f"t{n}", "a", "b", amount))
    hold_at = app.clock.advance(timedelta(minutes=1))
    await _post(app, _pay("h", "a", "b", 8_00, pending=True))
    app.clock.advance(timedelta(minutes=1))

    async def as_of(instant: datetime) -> Balances:
        balance = await app.queries.get_balance(LEDGER, "b", as_of=instant)
        assert balance.as_of == instant
        return balance.balances

    assert await as_of(before_anything) == Balances()
    assert await as_of(instants[0] - timedelta(microseconds=1)) == Balances()
    assert await as_of(instants[0]) == Balances(posted_credits=1_00)
    assert await as_of(instants[1] - timedelta(microseconds=1)) == Balances(posted_credits=1_00)
    assert await as_of(instants[1]) == Balances(posted_credits=3_00)
    assert await as_of(instants[2]) == Balances(posted_credits=7_00)
    assert await as_of(hold_at) == Balances(posted_credits=7_00, pending_credits=8_00)
    assert await as_of(app.clock.now()) == await _balances(app, "b")
    past = await app.queries.get_balance(LEDGER, "a", as_of=instants[1])
    assert (past.balances, past.available) == (Balances(posted_debits=3_00), -3_00)
    with pytest.raises(LedgerdError) as naive:
        await app.queries.get_balance(LEDGER, "b", as_of=instants[1].replace(tzinfo=None))
    assert naive.value.code is ErrorCode.VALIDATION_FAILED


async def test_statement_pagination(ledger_app: LedgerApp) -> None:
    app = ledger_app
    await _open_books(app, ("a", USD, AccountFlags()), ("b", USD, AccountFlags()))
    await app.post(PostTransfers(LEDGER, [_pay(f"t{n}", "a", "b", n) for n in range(1, 26)]))
    statement: list[Entry] = []
    cursor: str | None = None
    page_sizes: list[int] = []
    while True:
        page = await app.queries.list_entries(LEDGER, "b", cursor=cursor, limit=10)
        statement.extend(page.items)
        page_sizes.append(len(page.items))
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert page_sizes == [10, 10, 5]
    assert [entry.account_sequence for entry in statement] == list(range(1, 26))
    assert [entry.amount for entry in statement] == list(range(1, 26))
    assert [entry.balances_after.posted_credits for entry in statement] == [
        n * (n + 1) // 2 for n in range(1, 26)
    ]
    for bad_cursor in ("not-a-cursor!", "djE6eHl6"):  # the second is "v1:xyz"
        with pytest.raises(LedgerdError) as refused:
            await app.queries.list_entries(LEDGER, "b", cursor=bad_cursor)
        assert refused.value.code is ErrorCode.VALIDATION_FAILED
    with pytest.raises(LedgerdError) as refused:
        await app.queries.list_entries(LEDGER, "b", limit=0)
    assert refused.value.code is ErrorCode.VALIDATION_FAILED


# --- bad input changes nothing ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class World:
    """Records the bad-input cases refer to."""

    voided_hold: str
    swept_hold: str
    lapsed_hold: str
    open_hold: str
    reversed_payment: str


async def _build_world(app: LedgerApp) -> World:
    await _open_books(
        app,
        ("bank", USD, BANK),
        ("alice", USD, WALLET),
        ("bob", USD, WALLET),
        ("shop", USD, AccountFlags()),
        ("euro", EUR, AccountFlags()),
        ("frozen", USD, WALLET),
        ("closed", USD, WALLET),
    )
    await app.post(
        PostTransfers(
            LEDGER,
            [
                _pay("dep-alice", "bank", "alice", 100_00),
                _pay("dep-bob", "bank", "bob", 10_00),
                _pay("dep-frozen", "bank", "frozen", 5_00),
                _pay("k-used", "alice", "shop", 1_00),
            ],
        )
    )
    payment = await _post(app, _pay("k-rev", "alice", "shop", 1_00))
    await _post(app, ReversalRequest(payment.id))
    voided = await _post(app, _pay("h-void", "alice", "shop", 2_00, pending=True))
    await _post(app, VoidRequest(voided.id))
    swept = await _post(
        app, _pay("h-swept", "alice", "shop", 3_00, pending=True, timeout_seconds=60)
    )
    lapsed = await _post(
        app, _pay("h-lapsed", "alice", "shop", 4_00, pending=True, timeout_seconds=120)
    )
    still_open = await _post(app, _pay("h-open", "alice", "shop", 5_00, pending=True))
    app.clock.advance(timedelta(seconds=90))
    assert await app.expire(ExpirePending()) == 1
    app.clock.advance(timedelta(seconds=60))  # h-lapsed is past its deadline, not yet swept
    await app.change_status(ChangeAccountStatus(LEDGER, "frozen", AccountStatus.FROZEN))
    await app.change_status(ChangeAccountStatus(LEDGER, "closed", AccountStatus.CLOSED))
    return World(voided.id, swept.id, lapsed.id, still_open.id, payment.id)


Operation = Callable[[LedgerApp, World], Awaitable[object]]


def _transfer(*requests: PostingRequest, ledger: str = LEDGER, atomic: bool = False) -> Operation:
    async def run(app: LedgerApp, _world: World) -> Sequence[PostingResult]:
        return await app.post(PostTransfers(ledger, list(requests), atomic=atomic))

    return run


def _on_world(make: Callable[[World], PostingRequest]) -> Operation:
    async def run(app: LedgerApp, world: World) -> Sequence[PostingResult]:
        return await app.post(PostTransfers(LEDGER, [make(world)]))

    return run


def _leg(debit: str, credit: str, amount: int, asset: Asset | None = None) -> TransferRequest:
    return TransferRequest("bad-1", (LegRequest(debit, credit, amount, asset),))


def _key(key: str) -> TransferRequest:
    return _pay(key, "alice", "shop", 1)


def _command(make: Callable[[LedgerApp], Awaitable[object]]) -> Operation:
    async def run(app: LedgerApp, _world: World) -> object:
        return await make(app)

    return run


_V = ErrorCode.VALIDATION_FAILED
BAD_INPUT = [
    pytest.param(
        _transfer(_leg("alice", "ghost", 1)),
        [LedgerErrorCode.ACCOUNT_NOT_FOUND],
        id="unknown-account",
    ),
    pytest.param(
        _transfer(_leg("ghost", "alice", 1)),
        [LedgerErrorCode.ACCOUNT_NOT_FOUND],
        id="unknown-debit-account",
    ),
    pytest.param(
        _transfer(_leg("alice", "shop", 1), ledger="nope"),
        [LedgerErrorCode.LEDGER_NOT_FOUND],
        id="unknown-ledger",
    ),
    pytest.param(
        _transfer(_leg("alice", "euro", 1)), [LedgerErrorCode.ASSET_MISMATCH], id="asset-mismatch"
    ),
    pytest.param(
        _transfer(_leg("alice", "shop", 1, EUR)),
        [LedgerErrorCode.ASSET_MISMATCH],
        id="asset-mismatch-declared",
    ),
    pytest.param(_transfer(_leg("alice", "shop", 0)), [_V], id="zero-amount"),
    pytest.param(_transfer(_leg("alice", "shop", -1_00)), [_V], id="negative-amount"),
    pytest.param(_transfer(_leg("alice", "shop", 2**63)), [_V], id="amount-2**63"),
    pytest.param(
        _transfer(_leg("bank", "shop", MAX_AMOUNT)),
        [LedgerErrorCode.BALANCE_OVERFLOW],
        id="balance-overflow",
    ),
    pytest.param(
        _transfer(_leg("shop", "bank", 115_01)),
        [LedgerErrorCode.CREDIT_LIMIT_EXCEEDED],
        id="credit-limit-exceeded",
    ),
    pytest.param(
        _transfer(_leg("bob", "shop", 10_01)),
        [LedgerErrorCode.INSUFFICIENT_FUNDS],
        id="insufficient-funds",
    ),
    pytest.param(
        _transfer(_leg("frozen", "shop", 1)), [LedgerErrorCode.ACCOUNT_FROZEN], id="frozen-debit"
    ),
    pytest.param(
        _transfer(_leg("alice", "frozen", 1)), [LedgerErrorCode.ACCOUNT_FROZEN], id="frozen-credit"
    ),
    pytest.param(
        _transfer(_leg("closed", "shop", 1)), [LedgerErrorCode.ACCOUNT_CLOSED], id="closed-debit"
    ),
    pytest.param(
        _transfer(_leg("alice", "closed", 1)), [LedgerErrorCode.ACCOUNT_CLOSED], id="closed-credit"
    ),
    pytest.param(
        _on_world(lambda w: CaptureRequest(w.voided_hold)),
        [LedgerErrorCode.TRANSFER_NOT_PENDING],
        id="capture-voided-hold",
    ),
    pytest.param(
        _on_world(lambda w: CaptureRequest(w.swept_hold)),
        [LedgerErrorCode.PENDING_EXPIRED],
        id="capture-expired-hold",
    ),
    pytest.param(
        _on_world(lambda w: CaptureRequest(w.lapsed_hold)),
        [LedgerErrorCode.PENDING_EXPIRED],
        id="capture-lapsed-unswept-hold",
    ),
    pytest.param(
        _on_world(lambda w: VoidRequest(w.lapsed_hold)),
        [LedgerErrorCode.PENDING_EXPIRED],
        id="void-lapsed-unswept-hold",
    ),
    pytest.param(
        _on_world(lambda w: CaptureRequest(w.open_hold, amount=5_01)),
        [LedgerErrorCode.CAPTURE_EXCEEDS_PENDING],
        id="capture-exceeds-hold",
    ),
    pytest.param(
        _on_world(lambda w: CaptureRequest(w.reversed_payment)),
        [LedgerErrorCode.TRANSFER_NOT_PENDING],
        id="capture-a-posting",
    ),
    pytest.param(
        _on_world(lambda _: CaptureRequest("no-such-hold")),
        [LedgerErrorCode.TRANSFER_NOT_FOUND],
        id="capture-unknown",
    ),
    pytest.param(
        _on_world(lambda w: ReversalRequest(w.open_hold)),
        [LedgerErrorCode.TRANSFER_NOT_REVERSIBLE],
        id="reverse-a-hold",
    ),
    pytest.param(
        _on_world(lambda w: ReversalRequest(w.reversed_payment, idempotency_key="again")),
        [LedgerErrorCode.TRANSFER_ALREADY_REVERSED],
        id="reverse-twice",
    ),
    pytest.param(
        _transfer(_pay("k-used", "alice", "shop", 2_00)),
        [LedgerErrorCode.IDEMPOTENCY_CONFLICT],
        id="reused-key-other-amount",
    ),
    pytest.param(
        _transfer(_pay("k-used", "alice", "shop", 1_00, metadata={"x": "y"})),
        [LedgerErrorCode.IDEMPOTENCY_CONFLICT],
        id="reused-key-other-metadata",
    ),
    pytest.param(
        _transfer(_pay("k-used", "alice", "shop", 1_00, pending=True)),
        [LedgerErrorCode.IDEMPOTENCY_CONFLICT],
        id="reused-key-pending",
    ),
    pytest.param(_transfer(_key("")), [_V], id="key-empty"),
    pytest.param(_transfer(_key("k" * 129)), [_V], id="key-too-long"),
    pytest.param(_transfer(_key("a b")), [_V], id="key-with-space"),
    pytest.param(_transfer(_key("x/y")), [_V], id="key-with-slash"),
    pytest.param(_transfer(_key("caf\u00e9")), [_V], id="key-non-ascii"),
    pytest.param(_transfer(_leg("alice", "a b", 1)), [_V], id="account-id-with-space"),
    pytest.param(_transfer(_leg("x/y", "alice", 1)), [_V], id="account-id-with-slash"),
    pytest.param(_transfer(_leg("", "alice", 1)), [_V], id="account-id-empty"),
    pytest.param(_transfer(_leg("alice", "s" * 129, 1)), [_V], id="account-id-too-long"),
    pytest.param(
        _transfer(_leg("alice", "shop", 1), ledger="x/y"), [_V], id="ledger-id-with-slash"
    ),
    pytest.param(_transfer(_leg("alice", "shop", 1), ledger=""), [_V], id="ledger-id-empty"),
    pytest.param(
        _transfer(_leg("alice", "shop", 1), ledger="l" * 129), [_V], id="ledger-id-too-long"
    ),
    pytest.param(_on_world(lambda _: CaptureRequest("a b")), [_V], id="pending-id-with-space"),
    pytest.param(
        _on_world(lambda w: VoidRequest(w.open_hold, idempotency_key="x/y")),
        [_V],
        id="void-key-with-slash",
    ),
    pytest.param(
        _transfer(
            TransferRequest(
                "many", tuple(LegRequest("alice", "shop", 1) for _ in range(MAX_LEGS + 1))
            )
        ),
        [_V],
        id="too-many-legs",
    ),
    pytest.param(_transfer(TransferRequest("none", ())), [_V], id="no-legs"),
    pytest.param(_transfer(_leg("alice", "alice", 1)), [_V], id="debit-equals-credit"),
    pytest.param(
        _transfer(_pay("t", "alice", "shop", 1, timeout_seconds=5)),
        [_V],
        id="timeout-without-pending",
    ),
    pytest.param(
        _transfer(_pay("t", "alice", "shop", 1, metadata={"k": "v" * 1025})),
        [_V],
        id="metadata-value-too-long",
    ),
    pytest.param(
        _transfer(_pay("ok-1", "alice", "shop", 1), _leg("alice", "ghost", 1), atomic=True),
        [LedgerErrorCode.BATCH_ABORTED, LedgerErrorCode.ACCOUNT_NOT_FOUND],
        id="atomic-batch-with-one-bad",
    ),
    pytest.param(
        _command(lambda app: app.open_account(OpenAccount("nope", "a", USD))),
        [LedgerErrorCode.LEDGER_NOT_FOUND],
        id="open-account-unknown-ledger",
    ),
    pytest.param(
        _command(lambda app: app.open_account(OpenAccount(LEDGER, "alice", EUR))),
        [LedgerErrorCode.ACCOUNT_ALREADY_EXISTS],
        id="open-account-taken-id",
    ),
    pytest.param(
        _command(lambda app: app.open_account(OpenAccount(LEDGER, "a b", USD))),
        [_V],
        id="open-account-bad-id",
    ),
    pytest.param(
        _command(lambda app: app.create_ledger(CreateLedger(LEDGER, "other"))),
        [LedgerErrorCode.LEDGER_ALREADY_EXISTS],
        id="create-ledger-taken-id",
    ),
    pytest.param(
        _command(lambda app: app.create_ledger(CreateLedger("n", "x" * 201))),
        [_V],
        id="ledger-name-too-long",
    ),
    pytest.param(
        _command(lambda app: app.create_ledger(CreateLedger("n", "a\x00b"))),
        [_V],
        id="ledger-name-with-nul",
    ),
    pytest.param(
        _command(lambda app: app.create_ledger(CreateLedger("n", "\ud800"))),
        [_V],
        id="ledger-name-lone-surrogate",
    ),
    pytest.param(
        _command(
            lambda app: app.change_status(ChangeAccountStatus(LEDGER, "closed", AccountStatus.OPEN))
        ),
        [LedgerErrorCode.ACCOUNT_CLOSED],
        id="reopen-closed-account",
    ),
    pytest.param(
        _command(
            lambda app: app.change_status(
                ChangeAccountStatus(LEDGER, "alice", AccountStatus.CLOSED)
            )
        ),
        [LedgerErrorCode.ACCOUNT_HAS_PENDING],
        id="close-account-with-holds",
    ),
    pytest.param(
        _command(
            lambda app: app.change_status(
                ChangeAccountStatus(LEDGER, "ghost", AccountStatus.FROZEN)
            )
        ),
        [LedgerErrorCode.ACCOUNT_NOT_FOUND],
        id="freeze-unknown-account",
    ),
]


async def _error_codes(operation: Operation, app: LedgerApp, world: World) -> list[StrEnum]:
    """The codes the operation failed with: raised, or one per request of a batch."""
    try:
        outcome = await operation(app, world)
    except LedgerdError as error:
        return [error.code]
    assert isinstance(outcome, list), f"the operation succeeded: {outcome!r}"
    assert not [result for result in outcome if isinstance(result, Ok)], outcome
    return [result.error.code for result in outcome if isinstance(result, Err)]


@pytest.mark.parametrize(("operation", "codes"), BAD_INPUT)
async def test_bad_input_changes_nothing(
    ledger_app: LedgerApp, operation: Operation, codes: list[StrEnum]
) -> None:
    world = await _build_world(ledger_app)
    before = await dump_tables(ledger_app.engine)
    assert sum(len(rows) for rows in before.values()) > 0

    assert await _error_codes(operation, ledger_app, world) == codes

    assert await dump_tables(ledger_app.engine) == before
    await _assert_verified(ledger_app)


# --- tamper evidence -------------------------------------------------------------------------


async def _tamper_ready(app: LedgerApp) -> Transfer:
    await _open_books(app, ("a", USD, AccountFlags()), ("b", USD, AccountFlags()))
    transfers = [
        await _post(app, _pay(f"t{n}", "a", "b", n * 1_00, metadata={"order": f"o-{n}"}))
        for n in range(1, 4)
    ]
    await _assert_verified(app)
    return transfers[1]


async def _set_transfer(app: LedgerApp, transfer_id: str, **values: object) -> None:
    columns = tables.transfers.c
    async with app.engine.begin() as connection:
        await connection.execute(
            update(tables.transfers)
            .where(columns.ledger_id == LEDGER, columns.id == transfer_id)
            .values(**values)
        )


def _cli_verify(url: str, ledger_id: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own console script with fixed arguments
        [str(LEDGERD), "verify", ledger_id],
        env={**os.environ, "LEDGERD_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


async def test_tampered_leg_amount_is_reported(ledger_app: LedgerApp) -> None:
    app = ledger_app
    victim = await _tamper_ready(app)
    url = app.engine.url.render_as_string(hide_password=False)
    untouched = await asyncio.to_thread(_cli_verify, url, LEDGER)
    assert untouched.returncode == 0, untouched.stderr
    legs = [["a", "b", 2_01, "USD", 2]]  # was 2_00
    await _set_transfer(app, victim.id, legs=legs)

    report = await app.verify(VerifyLedger(LEDGER))
    assert not report.ok
    assert any(victim.id in problem and "altered" in problem for problem in report.problems)
    completed = await asyncio.to_thread(_cli_verify, url, LEDGER)
    assert completed.returncode == 1, completed.stderr
    assert "PROBLEM" in completed.stdout
    assert victim.id in completed.stdout


async def test_tampered_metadata_is_reported(ledger_app: LedgerApp) -> None:
    app = ledger_app
    victim = await _tamper_ready(app)
    await _set_transfer(app, victim.id, metadata={"order": "o-999"})
    report = await app.verify(VerifyLedger(LEDGER))
    assert any(victim.id in problem and "altered" in problem for problem in report.problems)


async def test_tampered_account_balance_is_reported(ledger_app: LedgerApp) -> None:
    app = ledger_app
    await _tamper_ready(app)
    columns = tables.accounts.c
    async with app.engine.begin() as connection:
        await connection.execute(
            update(tables.accounts)
            .where(columns.ledger_id == LEDGER, columns.id == "b")
            .values(posted_credits=columns.posted_credits + 1)
        )
    report = await app.verify(VerifyLedger(LEDGER))
    assert any(
        "account b" in problem and "differ from its entries" in problem
        for problem in report.problems
    )
    assert any("total debits differ from total credits" in problem for problem in report.problems)


async def test_tampered_status_of_an_unsettled_hold_is_reported(ledger_app: LedgerApp) -> None:
    app = ledger_app
    await _tamper_ready(app)
    hold = await _post(app, _pay("hold", "a", "b", 50, pending=True, timeout_seconds=60))
    await _set_transfer(app, hold.id, status=TransferStatus.POSTED.value)
    report = await app.verify(VerifyLedger(LEDGER))
    assert any(hold.id in problem for problem in report.problems)


# --- metadata filters --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        pytest.param("plain", "value", id="plain"),
        pytest.param("a.b", "x", id="key-with-dot"),
        pytest.param("$", "x", id="key-dollar"),
        pytest.param("a[0]", "x", id="key-with-brackets"),
        pytest.param("it's", "x", id="key-with-apostrophe"),
        pytest.param("k", "caf\u00e9 \u20ac \U0001f600", id="value-non-ascii"),
        pytest.param("k", "", id="value-empty"),
        pytest.param('a"b', "x", id="key-with-double-quote"),
        pytest.param("k", "a\x00b", id="value-with-nul"),
        pytest.param("a\x00", "x", id="key-with-nul"),
    ],
)
async def test_metadata_filter_finds_exactly_the_matching_accounts(
    ledger_app: LedgerApp, key: str, value: str
) -> None:
    app = ledger_app
    await app.create_ledger(CreateLedger(LEDGER))
    refused: LedgerdError | None = None
    try:
        await app.open_account(OpenAccount(LEDGER, "match", USD, metadata={key: value, "n": "1"}))
    except LedgerdError as error:
        refused = error
    if refused is not None:
        # Refusing such metadata outright is as good as finding it; storing it is not.
        assert refused.code is ErrorCode.VALIDATION_FAILED
        return
    await app.open_account(OpenAccount(LEDGER, "near-miss", USD, metadata={key: value + "!"}))
    await app.open_account(OpenAccount(LEDGER, "other-key", USD, metadata={"zz": value}))
    stored = await app.queries.get_account(LEDGER, "match")
    assert dict(stored.metadata) == {key: value, "n": "1"}

    page = await app.queries.list_accounts(LEDGER, metadata={key: value})
    assert [account.id for account in page.items] == ["match"]
    page = await app.queries.list_accounts(LEDGER, metadata={key: value, "n": "2"})
    assert page.items == []


async def test_creation_times_follow_the_chain_when_the_clock_steps_back(
    ledger_app: LedgerApp,
) -> None:
    app = ledger_app
    await _open_books(app, ("a", USD, AccountFlags()), ("b", USD, AccountFlags()))
    app.clock.advance(timedelta(minutes=1))
    first = await _post(app, _pay("t1", "a", "b", 1))
    app.clock.step_back(timedelta(hours=1))  # NTP corrects the server's clock
    second = await _post(app, _pay("t2", "a", "b", 2))
    app.clock.advance(timedelta(hours=2))
    third = await _post(app, _pay("t3", "a", "b", 3))

    assert second.created_at == first.created_at  # not an hour before it
    assert third.created_at == app.clock.now()

    async def listed(start: datetime | None, end: datetime | None) -> list[str]:
        page = await app.queries.list_transfers(LEDGER, start=start, end=end)
        return [transfer.id for transfer in page.items]

    tick = timedelta(microseconds=1)
    assert await listed(first.created_at, first.created_at + tick) == [first.id, second.id]
    assert await listed(first.created_at + tick, None) == [third.id]
    assert await listed(None, first.created_at) == []
    assert await listed(None, third.created_at + tick) == [first.id, second.id, third.id]
    assert await listed(third.created_at + tick, None) == []
    report = await app.verify(VerifyLedger(LEDGER))
    assert report.problems == []
