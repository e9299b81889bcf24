"""Re-check a ledger's hash chain, journal and balances (``ledgerd verify``)."""

from __future__ import annotations

from dataclasses import dataclass

from ledgerd.kernel.ids import check_id
from ledgerd.kernel.metadata import EMPTY_METADATA
from ledgerd.kernel.paging import MAX_PAGE_SIZE
from ledgerd.kernel.unit_of_work import UnitOfWork
from ledgerd.ledger.application._lookups import ledger_not_found
from ledgerd.ledger.domain.repositories import (
    AccountRepository,
    JournalRepository,
    LedgerRepository,
    TransferRepository,
)
from ledgerd.ledger.domain.verification import (
    ChainVerifier,
    JournalVerifier,
    VerificationReport,
)


@dataclass(frozen=True, slots=True)
class VerifyLedger:
    ledger_id: str


class VerifyLedgerHandler:
    def __init__(
        self,
        uow: UnitOfWork,
        ledgers: LedgerRepository,
        accounts: AccountRepository,
        transfers: TransferRepository,
        journal: JournalRepository,
    ) -> None:
        self._uow = uow
        self._ledgers = ledgers
        self._accounts = accounts
        self._transfers = transfers
        self._journal = journal

    async def __call__(self, command: VerifyLedger) -> VerificationReport:
        check_id(command.ledger_id, "ledger_id")
        report = VerificationReport(command.ledger_id)
        # One read-only transaction: on PostgreSQL a consistent snapshot of the whole ledger.
        async with self._uow.begin(read_only=True):
            head = await self._ledgers.get_head(command.ledger_id)
            if head is None:
                raise ledger_not_found(command.ledger_id)
            chain = ChainVerifier(report)
            async for transfer in self._transfers.chain(command.ledger_id):
                chain.feed(transfer)
            chain.finish(head)
            journal = JournalVerifier(report, chain.expected_balances())
            async for entry in self._journal.entries(command.ledger_id):
                journal.feed(entry)
            after: str | None = None
            while True:
                page = await self._accounts.list_page(
                    command.ledger_id, metadata=EMPTY_METADATA, after=after, limit=MAX_PAGE_SIZE
                )
                for account in page.items:
                    journal.check_account(account)
                if not page.items or page.next_cursor is None:
                    break
                after = page.items[-1].id
            journal.finish()
        return report
