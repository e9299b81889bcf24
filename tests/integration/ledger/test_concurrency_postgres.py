"""Many writers at once on one hot account: nothing is lost, nothing escapes, nothing breaks.

The workload mixes postings in and out of a hot, funds-limited account with holds, captures,
voids, expiries, replays and batches, from many concurrent tasks each making its own handler
calls. The test keeps its own account of what was accepted and checks the database against it.
"""

import asyncio
import dataclasses
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum

from sqlalchemy import func, select

from ledgerd.kernel.money import Asset
from ledgerd.kernel.result import Err, Ok
from ledgerd.ledger.adapters import tables
from ledgerd.ledger.application.create_ledger import CreateLedger
from ledgerd.ledger.application.expire_pending import ExpirePending
from ledgerd.ledger.application.open_account import OpenAccount
from ledgerd.ledger.application.post_transfers import PostTransfers
from ledgerd.ledger.application.verify_ledger import VerifyLedger
from ledgerd.ledger.domain.errors import LedgerErrorCode
from ledgerd.ledger.domain.model import (
    AccountFlags,
    Balances,
    Leg,
    Transfer,
    TransferKind,
    TransferStatus,
)
from ledgerd.ledger.domain.requests import (
    CaptureRequest,
    LegRequest,
    PostingRequest,
    TransferRequest,
    VoidRequest,
)
from tests.integration.conftest import LedgerApp, open_ledger_app

LEDGER = "hot-ledger"
HOT = "hot"
BANK = "bank"
RANDOM_ACCOUNTS = tuple(f"r{number:03d}" for number in range(100))
USD = Asset("USD", 2)
# Small enough that even the short SQLite run drains it: refusals under contention are certain.
HOT_FUNDS = 5_000
POSTGRES_WRITERS = 32
POSTGRES_SECONDS = 4.0
SQLITE_WRITERS = 4
SQLITE_SECONDS = 1.5
# The seconds above are the least a run lasts: on a loaded machine fewer calls fit in them, so a
# run goes on until it has done what it is for (enough accepted, a refusal for lack of funds),
# up to this bound.
MOST_SECONDS = 60.0
ENOUGH_ACCEPTED = 50
# Codes a request may legitimately fail with under this workload.
EXPECTED_FAILURES = {
    "transfer": {LedgerErrorCode.INSUFFICIENT_FUNDS, LedgerErrorCode.BATCH_ABORTED},
    "settle": {LedgerErrorCode.PENDING_EXPIRED, LedgerErrorCode.BATCH_ABORTED},
}


@dataclass
class Outcome:
    accepted: list[Transfer] = field(default_factory=list)
    holds: dict[str, Transfer] = field(default_factory=dict)
    failures: Counter[StrEnum] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    replays: int = 0
    expired_by_sweeps: int = 0
    calls: int = 0


class Writer:
    """One concurrent client: its own random stream, keys and holds."""

    def __init__(self, app: LedgerApp, number: int, outcome: Outcome) -> None:
        self._app = app
        self._number = number
        self._random = random.Random(number)  # noqa: S311 - a reproducible workload
        self._outcome = outcome
        self._sent = 0
        self._open_holds: list[Transfer] = []
        self._posted: list[tuple[TransferRequest, str]] = []

    def _key(self) -> str:
        self._sent += 1
        return f"w{self._number}-{self._sent}"

    def _other(self) -> str:
        return self._random.choice(RANDOM_ACCOUNTS)

    def _transfer(self) -> TransferRequest:
        pick = self._random.random()
        legs: tuple[LegRequest, ...]
        if pick < 0.45:
            legs = (LegRequest(HOT, self._other(), self._random.randint(1, 600)),)
            return TransferRequest(self._key(), legs)
        if pick < 0.70:
            legs = (LegRequest(self._other(), HOT, self._random.randint(1, 400)),)
            return TransferRequest(self._key(), legs)
        if pick < 0.80:
            legs = (
                LegRequest(HOT, self._other(), self._random.randint(1, 300)),
                LegRequest(self._other(), HOT, self._random.randint(1, 300)),
            )
            return TransferRequest(self._key(), legs, metadata={"legs": "2"})
        legs = (LegRequest(HOT, self._other(), self._random.randint(1, 500)),)
        timeout = self._random.choice((0, 2, 5))
        return TransferRequest(self._key(), legs, pending=True, timeout_seconds=timeout)

    def _settle(self) -> CaptureRequest | VoidRequest | None:
        if not self._open_holds:
            return None
        hold = self._open_holds.pop(self._random.randrange(len(self._open_holds)))
        pick = self._random.random()
        if pick < 0.4:
            return CaptureRequest(hold.id)
        if pick < 0.7:
            return CaptureRequest(hold.id, amount=self._random.randint(1, hold.legs[0].amount))
        return VoidRequest(hold.id)

    async def run(self, finished: Callable[[], bool]) -> None:
        while not finished():
            pick = self._random.random()
            if pick < 0.05 and self._posted:
                await self._replay()
                continue
            if pick < 0.20:
                batch: list[PostingRequest] = []
                for _ in range(self._random.randint(2, 5)):
                    settle = self._settle() if self._random.random() < 0.3 else None
                    batch.append(settle or self._transfer())
                await self._post(batch, atomic=self._random.random() < 0.3)
                continue
            settle = self._settle() if pick < 0.35 else None
            await self._post([settle or self._transfer()], atomic=False)

    async def _replay(self) -> None:
        request, transfer_id = self._random.choice(self._posted)
        self._outcome.calls += 1
        (result,) = await self._app.post(PostTransfers(LEDGER, [request]))
        if not (isinstance(result, Ok) and result.value.replayed):
            self._outcome.unexpected.append(f"replay of {request.key} gave {result!r}")
        elif result.value.transfer.id != transfer_id:
            self._outcome.unexpected.append(f"replay of {request.key} gave another transfer")
        else:
            self._outcome.replays += 1

    async def _post(self, requests: Sequence[PostingRequest], *, atomic: bool) -> None:
        self._outcome.calls += 1
        try:
            results = await self._app.post(PostTransfers(LEDGER, requests, atomic=atomic))
        except Exception as error:  # noqa: BLE001 - any escaping error is what the test reports
            self._outcome.unexpected.append(f"{type(error).__name__}: {error}")
            return
        if (
            atomic
            and any(isinstance(r, Ok) for r in results)
            and any(isinstance(r, Err) for r in results)
        ):
            self._outcome.unexpected.append(f"atomic batch partly applied: {results!r}")
        for request, result in zip(requests, results, strict=True):
            family = "transfer" if isinstance(request, TransferRequest) else "settle"
            if isinstance(result, Err):
                self._outcome.failures[result.error.code] += 1
                if result.error.code not in EXPECTED_FAILURES[family]:
                    self._outcome.unexpected.append(f"{request!r}: {result.error!r}")
                continue
            posted = result.value
            if posted.replayed:
                self._outcome.unexpected.append(f"{request!r} was unexpectedly a replay")
                continue
            self._outcome.accepted.append(posted.transfer)
            if isinstance(request, TransferRequest):
                self._posted.append((request, posted.transfer.id))
                if request.pending:
                    self._outcome.holds[posted.transfer.id] = posted.transfer
                    self._open_holds.append(posted.transfer)


async def _sweeper(app: LedgerApp, outcome: Outcome, finished: Callable[[], bool]) -> None:
    """The expiry worker: time passes (one clock second per turn) and due holds expire."""
    while not finished():
        app.clock.advance(timedelta(seconds=1))
        try:
            outcome.expired_by_sweeps += await app.expire(ExpirePending())
        except Exception as error:  # noqa: BLE001 - any escaping error is what the test reports
            outcome.unexpected.append(f"sweep: {type(error).__name__}: {error}")
        await asyncio.sleep(0.05)


async def _prepare(app: LedgerApp) -> None:
    await app.create_ledger(CreateLedger(LEDGER))
    await app.open_account(
        OpenAccount(LEDGER, HOT, USD, AccountFlags(debits_must_not_exceed_credits=True))
    )
    await app.open_account(OpenAccount(LEDGER, BANK, USD))
    for account_id in RANDOM_ACCOUNTS:
        await app.open_account(OpenAccount(LEDGER, account_id, USD))
    funding = TransferRequest("funding", (LegRequest(BANK, HOT, HOT_FUNDS),))
    await app.post.post_one(LEDGER, funding)


async def _run_workload(app: LedgerApp, writers: int, seconds: float) -> Outcome:
    await _prepare(app)
    outcome = Outcome()
    loop = asyncio.get_running_loop()
    least, most = loop.time() + seconds, loop.time() + MOST_SECONDS

    def finished() -> bool:
        now = loop.time()
        return now >= most or (now >= least and _did_its_work(outcome))

    tasks = [Writer(app, number, outcome).run(finished) for number in range(writers)]
    results = await asyncio.gather(*tasks, _sweeper(app, outcome, finished), return_exceptions=True)
    outcome.unexpected.extend(repr(result) for result in results if result is not None)
    return outcome


_POSTED_D, _POSTED_C, _PENDING_D, _PENDING_C = range(4)


def _move(model: dict[str, list[int]], transfer_legs: Sequence[Leg], layer: int, sign: int) -> None:
    """Add (or, with ``sign`` -1, take back) the legs on the debit and credit side of ``layer``."""
    for leg in transfer_legs:
        model[leg.debit_account][layer] += sign * leg.amount
        model[leg.credit_account][layer + 1] += sign * leg.amount


async def _expected_balances(app: LedgerApp, outcome: Outcome) -> dict[str, Balances]:
    """Balances from the funding plus what the writers were told was accepted."""
    model: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    _move(model, [Leg(BANK, HOT, HOT_FUNDS, USD)], _POSTED_D, 1)
    settled: set[str] = set()
    for transfer in outcome.accepted:
        match transfer.kind:
            case TransferKind.POSTING | TransferKind.CAPTURE:
                _move(model, transfer.legs, _POSTED_D, 1)
            case TransferKind.PENDING:
                _move(model, transfer.legs, _PENDING_D, 1)
            case TransferKind.VOID:
                pass
            case _:
                msg = f"the writers never ask for a {transfer.kind}"
                raise AssertionError(msg)
        if transfer.target_id is not None:
            settled.add(transfer.target_id)
    # A hold that was captured, voided or expired no longer holds anything.
    for hold_id, hold in outcome.holds.items():
        status = (await app.queries.get_transfer(LEDGER, hold_id)).status
        if hold_id in settled:
            assert status in {TransferStatus.CAPTURED, TransferStatus.VOIDED}, hold_id
        else:
            assert status in {TransferStatus.PENDING, TransferStatus.EXPIRED}, hold_id
        if status is not TransferStatus.PENDING:
            _move(model, hold.legs, _PENDING_D, -1)
    return {account: Balances(*values) for account, values in model.items()}


def _did_its_work(outcome: Outcome) -> bool:
    """Real contention, real refusals, replays and holds expired by the sweep."""
    return (
        len(outcome.accepted) > ENOUGH_ACCEPTED
        and outcome.failures[LedgerErrorCode.INSUFFICIENT_FUNDS] > 0
        and outcome.replays > 0
        and outcome.expired_by_sweeps > 0
    )


async def _check(app: LedgerApp, outcome: Outcome) -> None:
    assert outcome.unexpected == []
    assert _did_its_work(outcome), (outcome.failures, outcome.replays, outcome.expired_by_sweeps)

    # No lost update: every account holds exactly what the accepted transfers add up to...
    expected = await _expected_balances(app, outcome)
    actual = {}
    for account_id in (HOT, BANK, *RANDOM_ACCOUNTS):
        actual[account_id] = (await app.queries.get_account(LEDGER, account_id)).balances
    assert {k: v for k, v in actual.items() if v != Balances()} == {
        k: v for k, v in expected.items() if v != Balances()
    }
    # ...and what its journal entries add up to.
    columns = tables.entries.c
    sums: defaultdict[str, dict[str, int]] = defaultdict(dict)
    async with app.engine.connect() as connection:
        rows = await connection.execute(
            select(columns.account_id, columns.side, columns.layer, func.sum(columns.amount))
            .where(columns.ledger_id == LEDGER)
            .group_by(columns.account_id, columns.side, columns.layer)
        )
        for account_id, side, layer, total in rows:
            sums[account_id][f"{layer}_{side}s"] = int(total)
    for account_id, balances in actual.items():
        assert Balances(**sums[account_id]) == balances, account_id

    # The hot account never went past its limit, at any point of its history.
    async with app.engine.connect() as connection:
        hot_history = (
            await connection.execute(
                select(tables.entries)
                .where(columns.ledger_id == LEDGER, columns.account_id == HOT)
                .order_by(columns.account_sequence)
            )
        ).all()
    assert len(hot_history) > 50
    # Limits hold between transfers (inside a two-leg transfer, the leg that spends may come
    # before the leg that pays in): look at the hot account after each transfer's last entry.
    after_each_transfer = {row.transfer_sequence: row for row in hot_history}
    for row in after_each_transfer.values():
        debits = row.posted_debits_after + row.pending_debits_after
        assert debits <= row.posted_credits_after, row.account_sequence
    assert [row.account_sequence for row in hot_history] == list(range(1, len(hot_history) + 1))

    # Debits equal credits, posted and pending.
    totals = [
        sum(getattr(b, f.name) for b in actual.values()) for f in dataclasses.fields(Balances)
    ]
    posted_debits, posted_credits, pending_debits, pending_credits = totals
    assert posted_debits == posted_credits
    assert pending_debits == pending_credits

    # Gap-free sequence numbers, in the chain and in every account's journal.
    async with app.engine.connect() as connection:
        sequences = (
            (
                await connection.execute(
                    select(tables.transfers.c.sequence)
                    .where(tables.transfers.c.ledger_id == LEDGER)
                    .order_by(tables.transfers.c.sequence)
                )
            )
            .scalars()
            .all()
        )
        # (account, sequence) is the key, so count == max and min == 1 means 1..count.
        spans = await connection.execute(
            select(
                columns.account_id,
                func.count(),
                func.min(columns.account_sequence),
                func.max(columns.account_sequence),
            )
            .where(columns.ledger_id == LEDGER)
            .group_by(columns.account_id)
        )
        entry_spans = {row[0]: tuple(row[1:]) for row in spans}
    # The funding, what the writers were told was accepted, and the sweeps' expiries.
    transfers_made = 1 + len(outcome.accepted) + outcome.expired_by_sweeps
    assert list(sequences) == list(range(1, transfers_made + 1))
    for account_id in actual:
        count = (await app.queries.get_account(LEDGER, account_id)).entry_count
        assert entry_spans.get(account_id, (0, None, None)) == (
            (count, 1, count) if count else (0, None, None)
        ), account_id

    report = await app.verify(VerifyLedger(LEDGER))
    assert report.problems == []
    assert report.transfers == len(sequences)


async def test_many_writers_on_one_hot_account_postgres(migrated_postgres_url: str) -> None:
    async with open_ledger_app(migrated_postgres_url, pool_size=POSTGRES_WRITERS + 4) as app:
        outcome = await _run_workload(app, POSTGRES_WRITERS, POSTGRES_SECONDS)
        await _check(app, outcome)
        assert outcome.replays > 0
        assert outcome.expired_by_sweeps > 0


async def test_a_few_writers_serialise_on_sqlite(migrated_sqlite_url: str) -> None:
    """The same workload on SQLite, with a few writers.

    Writers queue for the lock; none sees "database is locked" (it would surface as an
    unexpected error).
    """
    async with open_ledger_app(migrated_sqlite_url) as app:
        outcome = await _run_workload(app, SQLITE_WRITERS, SQLITE_SECONDS)
        await _check(app, outcome)
