"""The composition root: builds every component from settings. The only place that wires.

Repositories and handlers are stateless (the transaction travels in a contextvar), so they are
app-scoped singletons; the engine is the one resource with a lifetime, closed by the container.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from dishka import AsyncContainer, Provider, Scope, make_async_container, provide, provide_all
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.kernel.clock import Clock, SystemClock
from ledgerd.kernel.ids import IdGenerator, random_id
from ledgerd.kernel.unit_of_work import UnitOfWork
from ledgerd.ledger.adapters.event_outbox import SqlEventOutbox
from ledgerd.ledger.adapters.sql_repositories import (
    SqlAccountRepository,
    SqlJournalRepository,
    SqlLedgerRepository,
    SqlTransferRepository,
)
from ledgerd.ledger.application.batcher import BatchingOptions, PostingBatcher
from ledgerd.ledger.application.change_account_status import ChangeAccountStatusHandler
from ledgerd.ledger.application.create_ledger import CreateLedgerHandler
from ledgerd.ledger.application.event_log import EventLog
from ledgerd.ledger.application.expire_pending import ExpirePendingHandler
from ledgerd.ledger.application.open_account import OpenAccountHandler
from ledgerd.ledger.application.post_transfers import PostTransfersHandler, TransferPoster
from ledgerd.ledger.application.posting_calls import CommitGrace, UnbatchedPoster
from ledgerd.ledger.application.queries import QUERY_TYPES, LedgerQueries
from ledgerd.ledger.application.update_account_metadata import UpdateAccountMetadataHandler
from ledgerd.ledger.application.verify_ledger import VerifyLedgerHandler
from ledgerd.ledger.domain.repositories import (
    AccountRepository,
    EventOutbox,
    JournalRepository,
    LedgerRepository,
    TransferRepository,
)
from ledgerd.ledger.entrypoints.cli.demo import DemoHandlers
from ledgerd.ledger.entrypoints.grpc.service import LedgerService, LedgerUseCases
from ledgerd.main.call_pipeline import build_call_pipeline
from ledgerd.main.publishers import build_publisher
from ledgerd.main.settings import Settings
from ledgerd.platform.api.admission import Admission
from ledgerd.platform.api.pipeline import CallPipeline
from ledgerd.platform.concurrency import Notifier
from ledgerd.platform.db.engine import create_engine, is_sqlite
from ledgerd.platform.db.unit_of_work import SqlAlchemyUnitOfWork
from ledgerd.platform.messaging.hub import InProcessHub
from ledgerd.platform.messaging.ports import Publisher
from ledgerd.platform.outbox.relay import OutboxRelay, RelayOptions
from ledgerd.platform.outbox.store import OutboxStore
from ledgerd.platform.outbox.writer import OutboxWriter

# The retry hint given with a refusal: a third to a half of the time a full house of calls
# (the default limit) takes to drain on the benchmark machine (docs/benchmarks.md,
# "Overload"), so a client waiting this long finds calls finished, and refused clients do not
# come straight back (each refusal costs the server about two thirds of a posting).
OVERLOAD_RETRY_AFTER_S = 0.5


class InfrastructureProvider(Provider):
    scope = Scope.APP

    @provide
    def clock(self) -> Clock:
        return SystemClock()

    @provide
    def id_generator(self) -> IdGenerator:
        return random_id

    @provide
    async def engine(self, settings: Settings) -> AsyncIterator[AsyncEngine]:
        engine = create_engine(
            settings.database_url,
            pool_size=settings.database_pool_size,
            pool_timeout_s=settings.database_pool_timeout_seconds,
            connect_timeout_s=settings.database_connect_timeout_seconds,
            statement_timeout_s=settings.database_statement_timeout_seconds,
            echo=settings.database_echo,
        )
        yield engine
        await engine.dispose()

    @provide
    def unit_of_work(self, engine: AsyncEngine) -> UnitOfWork:
        return SqlAlchemyUnitOfWork(engine)

    @provide
    def admission(self, settings: Settings) -> Admission:
        """The one bound on calls in the process: the gRPC server and the gateway share it."""
        return Admission(settings.max_concurrent_calls, retry_after_s=OVERLOAD_RETRY_AFTER_S)

    @provide
    def call_pipeline(self, admission: Admission) -> CallPipeline:
        """What every call passes through, gRPC or REST: one object both transports run."""
        return build_call_pipeline(admission)


class OutboxProvider(Provider):
    """Events: written by the use cases' transactions, relayed to the configured publisher."""

    scope = Scope.APP

    @provide
    def relay_wakeups(self) -> Notifier:
        """Commits in this process that wrote events wake the relay through this."""
        return Notifier()

    @provide
    def writer(self, wakeups: Notifier) -> OutboxWriter:
        return OutboxWriter(wake=wakeups.notify_all)

    @provide
    async def hub(self) -> AsyncIterator[InProcessHub]:
        hub = InProcessHub()
        yield hub
        await hub.aclose()

    @provide
    async def publisher(self, settings: Settings, hub: InProcessHub) -> AsyncIterator[Publisher]:
        publisher = build_publisher(settings, hub)
        yield publisher
        # The hub (which may be wrapped, for the payload format) closes itself.
        if settings.events_publisher != "hub":
            await publisher.aclose()

    @provide
    def store(self, engine: AsyncEngine) -> OutboxStore:
        return OutboxStore(SqlAlchemyUnitOfWork(engine))

    @provide
    def event_log(self, store: OutboxStore) -> EventLog:
        return store

    @provide
    def relay(
        self, store: OutboxStore, publisher: Publisher, wakeups: Notifier, settings: Settings
    ) -> OutboxRelay:
        options = RelayOptions(
            batch_size=settings.relay_batch_size,
            max_rejections=settings.relay_max_rejections,
            poll_interval_s=settings.relay_poll_interval_seconds,
        )
        return OutboxRelay(store, publisher, wakeups=wakeups, options=options)


class LedgerProvider(Provider):
    scope = Scope.APP

    ledgers = provide(SqlLedgerRepository, provides=LedgerRepository)
    accounts = provide(SqlAccountRepository, provides=AccountRepository)
    transfers = provide(SqlTransferRepository, provides=TransferRepository)
    journal = provide(SqlJournalRepository, provides=JournalRepository)
    events = provide(SqlEventOutbox, provides=EventOutbox)

    create_ledger = provide(CreateLedgerHandler)
    open_account = provide(OpenAccountHandler)
    change_account_status = provide(ChangeAccountStatusHandler)
    update_account_metadata = provide(UpdateAccountMetadataHandler)
    post_transfers = provide(PostTransfersHandler)

    @provide
    def commit_grace(self, settings: Settings) -> CommitGrace:
        return CommitGrace(settings.commit_grace_seconds)

    @provide
    async def transfer_poster(
        self, handler: PostTransfersHandler, grace: CommitGrace, settings: Settings
    ) -> AsyncIterator[TransferPoster]:
        """The batcher in front of the handler (closed, and drained, with the container)."""
        if not settings.batching:
            yield UnbatchedPoster(handler, grace)
            return
        options = BatchingOptions(
            max_batch=settings.batch_max_calls,
            max_wait_s=settings.batch_max_wait_ms / 1000,
            queue_capacity=settings.batch_queue_capacity,
            workers=posting_workers(settings),
            group_transfers=settings.batch_group_transfers,
            grace=grace,
        )
        async with PostingBatcher(handler, options) as batcher:
            yield batcher

    expire_pending = provide(ExpirePendingHandler)
    queries = provide_all(*QUERY_TYPES, LedgerQueries)
    verify_ledger = provide(VerifyLedgerHandler)

    demo_handlers = provide(DemoHandlers)
    use_cases = provide(LedgerUseCases)
    grpc_service = provide(LedgerService)


def posting_workers(settings: Settings) -> int:
    """How many posting groups may be in flight: ``LEDGERD_BATCH_WORKERS``, or its default.

    SQLite takes one writer at a time, so on it more groups only wait on its lock, polling
    (its busy handler sleeps up to 100 ms between tries). ``bench/run.py --sqlite``, five
    runs each (docs/benchmarks.md): 64 clients of single transfers, median 454 transfers/s
    with one worker, 354 with four, p99 177 ms against 1,417 ms.
    """
    if settings.batch_workers is not None:
        return settings.batch_workers
    return 1 if is_sqlite(settings.database_url) else 4


def build_container(settings: Settings, *overrides: Provider) -> AsyncContainer:
    """The application container.

    ``overrides`` (e.g. a fixed clock in tests) win over the defaults: later providers
    replace earlier registrations.
    """
    return make_async_container(
        InfrastructureProvider(),
        OutboxProvider(),
        LedgerProvider(),
        *overrides,
        context={Settings: settings},
    )
