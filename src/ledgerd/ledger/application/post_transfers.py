"""Post a batch of transfers (and captures, voids, reversals) in one unit of work.

The batch is the primitive: one transfer is a batch of one. Each request gets its own result;
with ``atomic`` a single failure fails them all and nothing is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ledgerd.kernel.clock import Clock
from ledgerd.kernel.errors import ErrorCode, LedgerdError, validation_error
from ledgerd.kernel.ids import IdGenerator, check_id
from ledgerd.kernel.result import Err, Ok, Result
from ledgerd.kernel.unit_of_work import UnitOfWork, retry_on_conflict
from ledgerd.ledger.application._lookups import ledger_not_found
from ledgerd.ledger.domain.model import Transfer
from ledgerd.ledger.domain.posting import Posted, PostingSession, PostingSnapshot
from ledgerd.ledger.domain.repositories import (
    AccountRepository,
    JournalRepository,
    LedgerRepository,
    TransferRepository,
)
from ledgerd.ledger.domain.requests import PostingRequest, TransferRequest, target_of

MAX_BATCH = 10_000

PostingResult = Result[Posted, LedgerdError]


@dataclass(frozen=True, slots=True)
class PostTransfers:
    ledger_id: str
    requests: Sequence[PostingRequest]
    atomic: bool = False


def _aborted(results: list[PostingResult]) -> list[PostingResult]:
    aborted = LedgerdError(
        ErrorCode.BATCH_ABORTED, "another transfer in this atomic batch failed; nothing was posted"
    )
    return [result if isinstance(result, Err) else Err(aborted) for result in results]


class PostTransfersHandler:
    def __init__(  # noqa: PLR0913 - one port each, all required
        self,
        *,
        uow: UnitOfWork,
        ledgers: LedgerRepository,
        accounts: AccountRepository,
        transfers: TransferRepository,
        journal: JournalRepository,
        clock: Clock,
        new_id: IdGenerator,
    ) -> None:
        self._uow = uow
        self._ledgers = ledgers
        self._accounts = accounts
        self._transfers = transfers
        self._journal = journal
        self._clock = clock
        self._new_id = new_id

    async def __call__(self, command: PostTransfers) -> list[PostingResult]:
        check_id(command.ledger_id, "ledger_id")
        if not 1 <= len(command.requests) <= MAX_BATCH:
            raise validation_error("transfers", f"a batch holds 1 to {MAX_BATCH} transfers")
        return await retry_on_conflict(lambda: self._attempt(command))

    async def post_one(self, ledger_id: str, request: PostingRequest) -> Posted:
        """Post a single request and return its transfer, or raise its error."""
        (result,) = await self(PostTransfers(ledger_id, [request]))
        if isinstance(result, Err):
            raise result.error
        return result.value

    async def _attempt(self, command: PostTransfers) -> list[PostingResult]:
        async with self._uow.begin() as tx:
            snapshot = await self._load(command)
            # "now" is read under the ledger's lock so creation times never go backwards.
            session = PostingSession(snapshot, now=self._clock.now(), new_id=self._new_id)
            results: list[PostingResult] = []
            for request in command.requests:
                try:
                    results.append(Ok(session.post(request)))
                except LedgerdError as error:
                    results.append(Err(error))
            if command.atomic and any(isinstance(result, Err) for result in results):
                return _aborted(results)
            if session.new_transfers:
                await self._transfers.add_many(session.new_transfers)
                await self._journal.append(session.entries)
                for account, version in session.changed_accounts():
                    await self._accounts.update(account, expected_version=version)
                for transfer, status in session.status_changes():
                    await self._transfers.set_status(transfer, status)
                await self._ledgers.save_head(session.head, previous=snapshot.head)
                await tx.commit()
            return results

    async def _load(self, command: PostTransfers) -> PostingSnapshot:
        """Load and lock what the batch may touch: accounts in id order, then the chain head.

        Every posting transaction locks in that same order, so they cannot deadlock. Requests
        that fail their own checks load nothing: bad input never reaches the database.
        """
        ledger_id = command.ledger_id
        valid = [request for request in command.requests if _is_well_formed(request)]
        target_ids = {t for r in valid if (t := target_of(r)) is not None}
        # Legs of existing transfers never change, so this unlocked read is enough to know
        # which accounts a capture, void or reversal will move.
        targets = await self._transfers.get_many(ledger_id, target_ids) if target_ids else {}
        account_ids = {
            account_id
            for transfer in targets.values()
            for leg in transfer.legs
            for account_id in (leg.debit_account, leg.credit_account)
        }
        for request in valid:
            if isinstance(request, TransferRequest):
                for leg in request.legs:
                    account_ids.update((leg.debit_account, leg.credit_account))
        accounts = await self._accounts.get_many(ledger_id, account_ids, for_update=True)
        head = await self._ledgers.get_head(ledger_id, for_update=True)
        if head is None:
            raise ledger_not_found(ledger_id)
        # Under the head lock nobody else posts in this ledger: the statuses and keys read
        # from here on stay true until commit.
        by_id: dict[str, Transfer] = {}
        if target_ids:
            by_id.update(await self._transfers.get_many(ledger_id, target_ids))
        if valid:
            replays = await self._transfers.get_by_keys(ledger_id, {r.key for r in valid})
            by_id.update({transfer.id: transfer for transfer in replays.values()})
        return PostingSnapshot(head=head, accounts=accounts, transfers=by_id)


def _is_well_formed(request: PostingRequest) -> bool:
    try:
        request.check()
    except LedgerdError:
        return False
    return True
