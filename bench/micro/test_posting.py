"""The posting engine in memory: validating and deciding a batch, and chaining hashes."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from bench.micro.conftest import Allocations, Benchmark

from ledgerd.kernel.money import Asset
from ledgerd.ledger.domain.chain import chained_hash
from ledgerd.ledger.domain.model import Account, AccountFlags, AccountStatus, LedgerHead
from ledgerd.ledger.domain.posting import PostingSession, PostingSnapshot
from ledgerd.ledger.domain.requests import LegRequest, TransferRequest

BATCH = 1_000
ACCOUNTS = 1_000
NOW = datetime(2026, 1, 1, tzinfo=UTC)
USD = Asset("USD", 2)
GENESIS = LedgerHead("bench", 0, "0" * 64)


def _accounts() -> dict[str, Account]:
    return {
        f"a{n}": Account(
            ledger_id="bench",
            id=f"a{n}",
            asset=USD,
            flags=AccountFlags(),
            status=AccountStatus.OPEN,
            metadata={},
            created_at=NOW,
        )
        for n in range(ACCOUNTS)
    }


def _requests(*, hot: bool) -> list[TransferRequest]:
    return [
        TransferRequest(
            idempotency_key=f"k{n}",
            # Hot: every transfer pays a1..a999 out of a0.
            legs=(
                LegRequest("a0" if hot else f"a{n % ACCOUNTS}", f"a{n % (ACCOUNTS - 1) + 1}", 1),
            ),
        )
        for n in range(BATCH)
    ]


def _decide(snapshot: PostingSnapshot, requests: list[TransferRequest]) -> PostingSession:
    ids = (f"t{n}" for n in itertools.count())
    session = PostingSession(snapshot, now=NOW, new_id=lambda: next(ids))
    for request in requests:
        session.post(request)
    return session


def test_validate_a_batch(benchmark: Benchmark, allocations: Allocations) -> None:
    requests = _requests(hot=False)

    def validate() -> None:
        for request in requests:
            request.check()

    allocations(validate)
    benchmark(validate)


def test_decide_a_batch_uniform(benchmark: Benchmark, allocations: Allocations) -> None:
    snapshot = PostingSnapshot(head=GENESIS, accounts=_accounts())
    requests = _requests(hot=False)
    allocations(lambda: _decide(snapshot, requests))
    session = benchmark(_decide, snapshot, requests)
    assert len(session.new_transfers) == BATCH


def test_decide_a_batch_hot(benchmark: Benchmark, allocations: Allocations) -> None:
    snapshot = PostingSnapshot(head=GENESIS, accounts=_accounts())
    requests = _requests(hot=True)
    allocations(lambda: _decide(snapshot, requests))
    session = benchmark(_decide, snapshot, requests)
    assert len(session.entries) == 2 * BATCH


def test_chain_hash(benchmark: Benchmark, allocations: Allocations) -> None:
    snapshot = PostingSnapshot(head=GENESIS, accounts=_accounts())
    transfer = _decide(snapshot, _requests(hot=False)[:1]).new_transfers[0]
    allocations(lambda: chained_hash(transfer, GENESIS.hash))
    digest = benchmark(chained_hash, transfer, GENESIS.hash)
    assert digest == transfer.hash
