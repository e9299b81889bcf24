import asyncio

import pytest

from ledgerd.kernel.errors import ConcurrencyConflictError, ErrorCode, LedgerdError
from ledgerd.kernel.result import Err, Ok
from ledgerd.kernel.unit_of_work import DEFAULT_ATTEMPTS
from ledgerd.ledger.application.post_transfers import PostTransfers
from ledgerd.ledger.domain.errors import LedgerErrorCode
from ledgerd.ledger.domain.model import Balances, TransferKind, TransferStatus
from ledgerd.ledger.domain.requests import (
    CaptureRequest,
    ReversalRequest,
    VoidRequest,
)
from tests.fakes.ledger_app import LedgerApp
from tests.unit.ledger.application.scenario import (
    FUNDED,
    LEDGER,
    account,
    create_ledger,
    err,
    ok,
    open_account,
    pay,
)


async def test_a_posting_is_written_in_one_commit(app: LedgerApp) -> None:
    commits = app.uow.commits

    (result,) = await app.post_transfers(PostTransfers(LEDGER, [pay("k1", ("bank", "alice", 70))]))

    transfer = ok(result).transfer
    assert app.uow.commits == commits + 1
    assert app.tables.transfers[LEDGER, transfer.id] == transfer
    assert app.tables.heads[LEDGER].sequence == 1
    assert app.tables.heads[LEDGER].hash == transfer.hash
    assert account(app, "alice").balances == Balances(posted_credits=70)
    assert account(app, "alice").version == 1
    assert account(app, "bank").balances == Balances(posted_debits=70)
    assert len(app.tables.account_entries(LEDGER, "alice")) == 1
    assert transfer.created_at == app.clock.now()


async def test_non_atomic_batch_a_bad_request_does_not_fail_its_neighbours(
    app: LedgerApp,
) -> None:
    commits = app.uow.commits

    results = await app.post_transfers(
        PostTransfers(
            LEDGER,
            [
                pay("k1", ("bank", "alice", 50)),
                pay("k2", ("alice", "bob", 51)),  # alice holds only 50
                pay("k3", ("alice", "bob", 20)),
                pay("k4", ("alice", "alice", 1)),  # malformed
                pay("k5", ("alice", "ghost", 1)),
            ],
        )
    )

    assert ok(results[0]).transfer.sequence == 1
    assert err(results[1]).code is LedgerErrorCode.INSUFFICIENT_FUNDS
    assert ok(results[2]).transfer.sequence == 2
    assert err(results[3]).code is ErrorCode.VALIDATION_FAILED
    assert err(results[4]).code is LedgerErrorCode.ACCOUNT_NOT_FOUND
    assert app.uow.commits == commits + 1
    assert account(app, "alice").balances == Balances(posted_debits=20, posted_credits=50)
    assert account(app, "bob").balances == Balances(posted_credits=20)
    assert {t.idempotency_key for t in app.tables.transfers.values()} == {"k1", "k3"}


async def test_atomic_batch_fails_as_a_whole_and_writes_nothing(app: LedgerApp) -> None:
    await app.post_transfers(PostTransfers(LEDGER, [pay("seed", ("bank", "alice", 10))]))
    before = app.tables.copy()
    commits = app.uow.commits

    results = await app.post_transfers(
        PostTransfers(
            LEDGER,
            [
                pay("k1", ("bank", "alice", 50)),
                pay("k2", ("alice", "bob", 500)),
                pay("k3", ("alice", "bob", 20)),
                pay("k4", ("alice", "ghost", 1)),
            ],
            atomic=True,
        )
    )

    assert [err(result).code for result in results] == [
        LedgerErrorCode.BATCH_ABORTED,
        LedgerErrorCode.INSUFFICIENT_FUNDS,
        LedgerErrorCode.BATCH_ABORTED,
        LedgerErrorCode.ACCOUNT_NOT_FOUND,
    ]
    assert app.tables == before
    assert app.uow.commits == commits
    # Nothing claimed the keys: the good requests post fine on their own.
    retry = await app.post_transfers(
        PostTransfers(LEDGER, [pay("k1", ("bank", "alice", 50)), pay("k3", ("alice", "bob", 20))])
    )
    assert [ok(r).replayed for r in retry] == [False, False]
    assert [ok(r).transfer.sequence for r in retry] == [2, 3]


async def test_atomic_batch_that_succeeds_is_one_commit(app: LedgerApp) -> None:
    commits = app.uow.commits

    results = await app.post_transfers(
        PostTransfers(
            LEDGER,
            [pay("k1", ("bank", "alice", 50)), pay("k2", ("alice", "bob", 50))],
            atomic=True,
        )
    )

    assert [ok(r).transfer.sequence for r in results] == [1, 2]
    assert app.uow.commits == commits + 1
    assert account(app, "alice").balances == Balances(posted_debits=50, posted_credits=50)


async def test_a_batch_where_everything_fails_commits_nothing(app: LedgerApp) -> None:
    before = app.tables.copy()
    commits = app.uow.commits

    results = await app.post_transfers(
        PostTransfers(LEDGER, [pay("k1", ("alice", "bob", 1)), pay("k2", ("bob", "alice", 1))])
    )

    assert [err(r).code for r in results] == [LedgerErrorCode.INSUFFICIENT_FUNDS] * 2
    assert app.tables == before
    assert app.uow.commits == commits


async def test_unknown_ledger(app: LedgerApp) -> None:
    before = app.tables.copy()

    with pytest.raises(LedgerdError) as caught:
        await app.post_transfers(PostTransfers("nope", [pay("k1", ("bank", "alice", 1))]))

    assert caught.value.code is LedgerErrorCode.LEDGER_NOT_FOUND
    assert caught.value.details == {"ledger": "nope"}
    assert app.tables == before


@pytest.mark.parametrize(
    "command",
    [
        PostTransfers(LEDGER, []),
        PostTransfers(LEDGER, [pay("k", ("a", "b", 1))] * 10_001),
        PostTransfers("bad id", [pay("k", ("a", "b", 1))]),
    ],
)
async def test_malformed_batches(app: LedgerApp, command: PostTransfers) -> None:
    transactions = app.uow.transactions

    with pytest.raises(LedgerdError) as caught:
        await app.post_transfers(command)

    assert caught.value.code is ErrorCode.VALIDATION_FAILED
    assert app.uow.transactions == transactions  # bad input never reaches the store


async def test_a_replay_returns_the_original_and_writes_nothing(app: LedgerApp) -> None:
    request = pay("k1", ("bank", "alice", 5))
    original = await app.post_transfers.post_one(LEDGER, request)
    before = app.tables.copy()
    commits = app.uow.commits

    replay = await app.post_transfers.post_one(LEDGER, request)
    (conflict,) = await app.post_transfers(PostTransfers(LEDGER, [pay("k1", ("bank", "bob", 5))]))

    assert replay.replayed
    assert replay.transfer == original.transfer
    assert err(conflict).code is LedgerErrorCode.IDEMPOTENCY_CONFLICT
    assert app.tables == before
    assert app.uow.commits == commits


async def test_replay_within_a_batch(app: LedgerApp) -> None:
    request = pay("k1", ("bank", "alice", 5))

    first, second = await app.post_transfers(PostTransfers(LEDGER, [request, request]))

    assert ok(second).replayed
    assert ok(second).transfer.id == ok(first).transfer.id
    assert account(app, "alice").balances.posted_credits == 5


async def test_post_one_raises_the_error(app: LedgerApp) -> None:
    with pytest.raises(LedgerdError) as caught:
        await app.post_transfers.post_one(LEDGER, pay("k1", ("alice", "bob", 1)))

    assert caught.value.code is LedgerErrorCode.INSUFFICIENT_FUNDS


async def test_settlements_update_the_stored_status(app: LedgerApp) -> None:
    post = app.post_transfers.post_one
    await post(LEDGER, pay("fund", ("bank", "alice", 100)))
    first = (await post(LEDGER, pay("h1", ("alice", "bob", 30), pending=True))).transfer
    second = (await post(LEDGER, pay("h2", ("alice", "bob", 20), pending=True))).transfer
    paid = (await post(LEDGER, pay("p", ("alice", "bob", 10)))).transfer
    assert account(app, "alice").available == 40

    capture, void, reversal = await app.post_transfers(
        PostTransfers(
            LEDGER,
            [CaptureRequest(first.id, amount=25), VoidRequest(second.id), ReversalRequest(paid.id)],
        )
    )

    statuses = {t.id: t.status for t in app.tables.transfers.values()}
    assert statuses[first.id] is TransferStatus.CAPTURED
    assert statuses[second.id] is TransferStatus.VOIDED
    assert statuses[paid.id] is TransferStatus.REVERSED
    assert ok(capture).transfer.kind is TransferKind.CAPTURE
    assert ok(void).transfer.kind is TransferKind.VOID
    assert ok(reversal).transfer.kind is TransferKind.REVERSAL
    assert account(app, "alice").balances == Balances(
        posted_debits=35, posted_credits=110, pending_debits=0
    )
    assert account(app, "bob").balances == Balances(posted_debits=10, posted_credits=35)


async def test_lost_races_are_retried_and_applied_once(app: LedgerApp) -> None:
    app.uow.conflicts_to_raise = 2
    transactions = app.uow.transactions

    posted = await app.post_transfers.post_one(LEDGER, pay("k1", ("bank", "alice", 5)))

    assert not posted.replayed
    assert app.uow.transactions == transactions + 3
    assert account(app, "alice").balances.posted_credits == 5
    assert len(app.tables.transfers) == 1


async def test_gives_up_after_too_many_lost_races(app: LedgerApp) -> None:
    app.uow.conflicts_to_raise = DEFAULT_ATTEMPTS
    before = app.tables.copy()

    with pytest.raises(ConcurrencyConflictError):
        await app.post_transfers.post_one(LEDGER, pay("k1", ("bank", "alice", 5)))

    assert app.tables == before


async def test_concurrent_spending_never_overdraws(app: LedgerApp) -> None:
    await app.post_transfers.post_one(LEDGER, pay("fund", ("bank", "alice", 100)))

    results = await asyncio.gather(
        *(
            app.post_transfers(PostTransfers(LEDGER, [pay(f"spend-{i}", ("alice", "bob", 30))]))
            for i in range(8)
        )
    )

    outcomes = [result for (result,) in results]
    assert sum(isinstance(r, Ok) for r in outcomes) == 3
    assert [err(r).code for r in outcomes if isinstance(r, Err)] == [
        LedgerErrorCode.INSUFFICIENT_FUNDS
    ] * 5
    assert account(app, "alice").balances == Balances(posted_debits=90, posted_credits=100)
    assert [
        t.sequence for t in sorted(app.tables.transfers.values(), key=lambda t: t.sequence)
    ] == [
        1,
        2,
        3,
        4,
    ]


async def test_ledgers_are_separate_tenants(app: LedgerApp) -> None:
    await create_ledger(app, "M")
    await open_account(app, "bank", ledger_id="M")
    await open_account(app, "alice", ledger_id="M", flags=FUNDED)
    request = pay("same-key", ("bank", "alice", 5))

    in_l = await app.post_transfers.post_one(LEDGER, request)
    in_m = await app.post_transfers.post_one("M", request)

    assert not in_m.replayed
    assert in_m.transfer.id != in_l.transfer.id
    assert (in_l.transfer.sequence, in_m.transfer.sequence) == (1, 1)
    assert in_m.transfer.ledger_id == "M"
    assert account(app, "alice", "M").balances.posted_credits == 5
    assert account(app, "alice").balances.posted_credits == 5
    (cross,) = await app.post_transfers(PostTransfers("M", [CaptureRequest(in_l.transfer.id)]))
    assert err(cross).code is LedgerErrorCode.TRANSFER_NOT_FOUND
