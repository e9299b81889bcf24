"""Every ledger use case wired on the in-memory fakes: the unit tests' composition root."""

from __future__ import annotations

from dataclasses import dataclass

from ledgerd.ledger.application.change_account_status import ChangeAccountStatusHandler
from ledgerd.ledger.application.create_ledger import CreateLedgerHandler
from ledgerd.ledger.application.expire_pending import ExpirePendingHandler
from ledgerd.ledger.application.open_account import OpenAccountHandler
from ledgerd.ledger.application.post_transfers import PostTransfersHandler
from ledgerd.ledger.application.queries import (
    ExportEntriesQuery,
    GetAccountQuery,
    GetBalanceQuery,
    GetBalancesQuery,
    GetLedgerQuery,
    GetTransferByKeyQuery,
    GetTransferQuery,
    LedgerQueries,
    ListAccountsQuery,
    ListEntriesQuery,
    ListLedgersQuery,
    ListTransfersQuery,
)
from ledgerd.ledger.application.replay_ledger import ReplayLedgerHandler
from ledgerd.ledger.application.update_account_metadata import UpdateAccountMetadataHandler
from ledgerd.ledger.application.verify_ledger import VerifyLedgerHandler
from tests.fakes.clock import ManualClock
from tests.fakes.ids import SequentialIds
from tests.fakes.ledger_store import (
    FakeAccountRepository,
    FakeEventOutbox,
    FakeJournalRepository,
    FakeLedgerEvents,
    FakeLedgerRepository,
    FakeTransferRepository,
    FakeUnitOfWork,
    LedgerTables,
)


@dataclass(frozen=True, slots=True)
class LedgerApp:
    clock: ManualClock
    ids: SequentialIds
    uow: FakeUnitOfWork
    ledgers: FakeLedgerRepository
    accounts: FakeAccountRepository
    transfers: FakeTransferRepository
    journal: FakeJournalRepository
    events: FakeEventOutbox
    create_ledger: CreateLedgerHandler
    open_account: OpenAccountHandler
    change_account_status: ChangeAccountStatusHandler
    update_account_metadata: UpdateAccountMetadataHandler
    post_transfers: PostTransfersHandler
    expire_pending: ExpirePendingHandler
    queries: LedgerQueries
    verify_ledger: VerifyLedgerHandler
    replay_ledger: ReplayLedgerHandler

    @property
    def tables(self) -> LedgerTables:
        """The fake database's rows (read them between use cases, not during one)."""
        return self.uow.tables


def make_ledger_app(
    clock: ManualClock | None = None, ids: SequentialIds | None = None
) -> LedgerApp:
    clock = ManualClock() if clock is None else clock
    ids = SequentialIds() if ids is None else ids
    uow = FakeUnitOfWork()
    ledgers = FakeLedgerRepository(uow)
    accounts = FakeAccountRepository(uow)
    transfers = FakeTransferRepository(uow)
    journal = FakeJournalRepository(uow)
    events = FakeEventOutbox(uow)
    post = PostTransfersHandler(
        uow=uow,
        ledgers=ledgers,
        accounts=accounts,
        transfers=transfers,
        journal=journal,
        events=events,
        clock=clock,
        new_id=ids,
    )
    queries = _queries(uow, ledgers, accounts, transfers, journal)
    verify = VerifyLedgerHandler(
        uow=uow, ledgers=ledgers, accounts=accounts, transfers=transfers, journal=journal
    )
    return LedgerApp(
        clock=clock,
        ids=ids,
        uow=uow,
        ledgers=ledgers,
        accounts=accounts,
        transfers=transfers,
        journal=journal,
        events=events,
        create_ledger=CreateLedgerHandler(uow=uow, ledgers=ledgers, events=events, clock=clock),
        open_account=OpenAccountHandler(
            uow=uow, ledgers=ledgers, accounts=accounts, events=events, clock=clock
        ),
        change_account_status=ChangeAccountStatusHandler(
            uow=uow, ledgers=ledgers, accounts=accounts, events=events
        ),
        update_account_metadata=UpdateAccountMetadataHandler(
            uow=uow, ledgers=ledgers, accounts=accounts, events=events
        ),
        post_transfers=post,
        expire_pending=ExpirePendingHandler(uow=uow, transfers=transfers, post=post, clock=clock),
        queries=queries,
        verify_ledger=verify,
        replay_ledger=ReplayLedgerHandler(FakeLedgerEvents(uow), queries.list_accounts, verify),
    )


def _queries(
    uow: FakeUnitOfWork,
    ledgers: FakeLedgerRepository,
    accounts: FakeAccountRepository,
    transfers: FakeTransferRepository,
    journal: FakeJournalRepository,
) -> LedgerQueries:
    """Each read on just the ports it needs, as the composition root builds them."""
    get_account = GetAccountQuery(uow, ledgers, accounts)
    return LedgerQueries(
        get_ledger=GetLedgerQuery(uow, ledgers),
        list_ledgers=ListLedgersQuery(uow, ledgers),
        get_account=get_account,
        list_accounts=ListAccountsQuery(uow, ledgers, accounts),
        get_balance=GetBalanceQuery(uow, ledgers, accounts, journal),
        get_balances=GetBalancesQuery(uow, ledgers, accounts, journal),
        get_transfer=GetTransferQuery(uow, ledgers, transfers),
        get_transfer_by_key=GetTransferByKeyQuery(uow, ledgers, transfers),
        list_transfers=ListTransfersQuery(uow, ledgers, accounts, transfers),
        list_entries=ListEntriesQuery(uow, ledgers, accounts, journal),
        export_entries=ExportEntriesQuery(uow, get_account, journal),
    )
