"""Every ledger use case on the in-memory fakes, wired by the composition root's own provider.

The use cases come from ``LedgerApplicationProvider`` (the provider production uses too), their
ports from ``FakeLedgerPorts``: test wiring cannot drift from production wiring.
"""

from __future__ import annotations

from dataclasses import dataclass

from dishka import AnyOf, Provider, Scope, make_container, provide

from ledgerd.kernel.clock import Clock
from ledgerd.kernel.ids import IdGenerator
from ledgerd.kernel.unit_of_work import UnitOfWork
from ledgerd.ledger.application.change_account_status import ChangeAccountStatusHandler
from ledgerd.ledger.application.create_ledger import CreateLedgerHandler, LedgerCreatorGrants
from ledgerd.ledger.application.expire_pending import ExpirePendingHandler
from ledgerd.ledger.application.ledger_events import LedgerEvents
from ledgerd.ledger.application.open_account import OpenAccountHandler
from ledgerd.ledger.application.post_transfers import PostTransfersHandler
from ledgerd.ledger.application.queries import LedgerQueries
from ledgerd.ledger.application.replay_ledger import ReplayLedgerHandler
from ledgerd.ledger.application.update_account_metadata import UpdateAccountMetadataHandler
from ledgerd.ledger.application.verify_ledger import VerifyLedgerHandler
from ledgerd.ledger.domain.repositories import (
    AccountRepository,
    EventOutbox,
    JournalRepository,
    LedgerRepository,
    TransferRepository,
)
from ledgerd.main.contexts.ledger import LedgerApplicationProvider
from tests.fakes.clock import ManualClock
from tests.fakes.ids import SequentialIds
from tests.fakes.ledger_store import (
    FakeAccountRepository,
    FakeEventOutbox,
    FakeJournalRepository,
    FakeLedgerCreatorGrants,
    FakeLedgerEvents,
    FakeLedgerRepository,
    FakeTransferRepository,
    FakeUnitOfWork,
    LedgerTables,
)


class FakeLedgerPorts(Provider):
    """Every port the ledger's use cases need, on one fake database.

    Each fake is registered under its own type too, so tests reach its extras (the tables, the
    clock's ``advance``).
    """

    scope = Scope.APP

    def __init__(self, clock: ManualClock, ids: SequentialIds) -> None:
        super().__init__()
        self._clock = clock
        self._ids = ids

    @provide(provides=AnyOf[ManualClock, Clock])
    def clock(self) -> ManualClock:
        return self._clock

    @provide(provides=AnyOf[SequentialIds, IdGenerator])
    def ids(self) -> SequentialIds:
        return self._ids

    @provide(provides=AnyOf[FakeUnitOfWork, UnitOfWork])
    def uow(self) -> FakeUnitOfWork:
        return FakeUnitOfWork()

    ledgers = provide(FakeLedgerRepository, provides=AnyOf[FakeLedgerRepository, LedgerRepository])
    accounts = provide(
        FakeAccountRepository, provides=AnyOf[FakeAccountRepository, AccountRepository]
    )
    transfers = provide(
        FakeTransferRepository, provides=AnyOf[FakeTransferRepository, TransferRepository]
    )
    journal = provide(
        FakeJournalRepository, provides=AnyOf[FakeJournalRepository, JournalRepository]
    )
    events = provide(FakeEventOutbox, provides=AnyOf[FakeEventOutbox, EventOutbox])
    creator_grants = provide(
        FakeLedgerCreatorGrants, provides=AnyOf[FakeLedgerCreatorGrants, LedgerCreatorGrants]
    )
    event_stream = provide(FakeLedgerEvents, provides=LedgerEvents)


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
    ports = FakeLedgerPorts(
        ManualClock() if clock is None else clock, SequentialIds() if ids is None else ids
    )
    # Nothing here has a lifetime to end (no provider finalizes), so the container is not closed.
    container = make_container(LedgerApplicationProvider(), ports)
    return LedgerApp(
        clock=container.get(ManualClock),
        ids=container.get(SequentialIds),
        uow=container.get(FakeUnitOfWork),
        ledgers=container.get(FakeLedgerRepository),
        accounts=container.get(FakeAccountRepository),
        transfers=container.get(FakeTransferRepository),
        journal=container.get(FakeJournalRepository),
        events=container.get(FakeEventOutbox),
        create_ledger=container.get(CreateLedgerHandler),
        open_account=container.get(OpenAccountHandler),
        change_account_status=container.get(ChangeAccountStatusHandler),
        update_account_metadata=container.get(UpdateAccountMetadataHandler),
        post_transfers=container.get(PostTransfersHandler),
        expire_pending=container.get(ExpirePendingHandler),
        queries=container.get(LedgerQueries),
        verify_ledger=container.get(VerifyLedgerHandler),
        replay_ledger=container.get(ReplayLedgerHandler),
    )
