"""The ledger context, as the composition root composes it: one module, one description.

Its providers (repositories, use cases, the posting batcher, the servicer), its gRPC service
(REST follows from the proto's annotations; its field rules, API examples and the scope each
RPC needs), its background worker (the expiry sweep), its error codes and its migrations. The
shared wiring takes them from ``LEDGER`` in ``ledgerd.main.contexts``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from dishka import AsyncContainer, Provider, Scope, provide, provide_all

from ledgerd.ledger.adapters.event_outbox import SqlEventOutbox
from ledgerd.ledger.adapters.event_stream import OutboxLedgerEvents
from ledgerd.ledger.adapters.sql_repositories import (
    SqlAccountRepository,
    SqlJournalRepository,
    SqlLedgerRepository,
    SqlTransferRepository,
)
from ledgerd.ledger.application._lookups import ledger_not_found
from ledgerd.ledger.application.batcher import BatchingOptions, PostingBatcher
from ledgerd.ledger.application.change_account_status import ChangeAccountStatusHandler
from ledgerd.ledger.application.create_ledger import CreateLedgerHandler
from ledgerd.ledger.application.expire_pending import ExpirePendingHandler
from ledgerd.ledger.application.ledger_events import LedgerEvents
from ledgerd.ledger.application.open_account import OpenAccountHandler
from ledgerd.ledger.application.post_transfers import PostTransfersHandler, TransferPoster
from ledgerd.ledger.application.posting_calls import CommitGrace, UnbatchedPoster
from ledgerd.ledger.application.queries import QUERY_TYPES, LedgerQueries
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
from ledgerd.ledger.entrypoints.cli.demo import DemoHandlers
from ledgerd.ledger.entrypoints.errors import LEDGER_ERRORS
from ledgerd.ledger.entrypoints.grpc.api_access import LEDGER_API_ACCESS
from ledgerd.ledger.entrypoints.grpc.api_examples import LEDGER_API_EXAMPLES
from ledgerd.ledger.entrypoints.grpc.api_rules import LEDGER_API_RULES
from ledgerd.ledger.entrypoints.grpc.service import LedgerService, LedgerUseCases
from ledgerd.ledger.entrypoints.worker import run_expiry_loop
from ledgerd.main.bounded_context import BackgroundWorker, BoundedContext, GrpcService, looping
from ledgerd.main.contexts.ledger_commands import add_ledger_commands
from ledgerd.main.settings import Settings
from ledgerd.platform.db.engine import is_sqlite
from ledgerd.platform.outbox.store import OutboxStore
from ledgerd.v1 import ledger_pb2, ledger_pb2_grpc

LEDGER_SERVICE = ledger_pb2.DESCRIPTOR.services_by_name["LedgerService"].full_name


class LedgerApplicationProvider(Provider):
    """The ledger's use cases, commands and queries, built on its ports alone.

    The ports (unit of work, repositories, event outbox and event stream, clock, ids) come from
    other providers: here the container's infrastructure and ``LedgerSqlProvider``, in the unit
    tests the in-memory fakes (``tests/fakes/ledger_app.py``), so the tests run this very wiring.
    """

    scope = Scope.APP

    create_ledger = provide(CreateLedgerHandler)
    open_account = provide(OpenAccountHandler)
    change_account_status = provide(ChangeAccountStatusHandler)
    update_account_metadata = provide(UpdateAccountMetadataHandler)
    post_transfers = provide(PostTransfersHandler)
    expire_pending = provide(ExpirePendingHandler)
    queries = provide_all(*QUERY_TYPES, LedgerQueries)
    verify_ledger = provide(VerifyLedgerHandler)
    replay_ledger = provide(ReplayLedgerHandler)


class LedgerSqlProvider(Provider):
    """The ledger's ports on the database: its repositories and the shared outbox."""

    scope = Scope.APP

    ledgers = provide(SqlLedgerRepository, provides=LedgerRepository)
    accounts = provide(SqlAccountRepository, provides=AccountRepository)
    transfers = provide(SqlTransferRepository, provides=TransferRepository)
    journal = provide(SqlJournalRepository, provides=JournalRepository)
    events = provide(SqlEventOutbox, provides=EventOutbox)

    @provide
    def event_stream(self, store: OutboxStore) -> LedgerEvents:
        """The ledger reads its own events back (replay) from the shared outbox."""
        return OutboxLedgerEvents(store)


class LedgerServingProvider(Provider):
    """What drives the use cases: the poster entry points post through, the demo, the servicer."""

    scope = Scope.APP

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


@contextlib.asynccontextmanager
async def expiry_sweep(
    container: AsyncContainer, settings: Settings, _command: str
) -> AsyncIterator[asyncio.Future[None]]:
    """Expire overdue holds every ``LEDGERD_EXPIRY_INTERVAL_SECONDS`` while the block runs.

    Leaving it lets the sweep in progress finish.
    """
    handler = await container.get(ExpirePendingHandler)
    interval_s = settings.expiry_interval_seconds
    async with looping(
        "expiry-sweep", lambda stop: run_expiry_loop(handler, stop, interval_s=interval_s)
    ) as sweeping:
        yield sweeping


def _providers() -> Sequence[Provider]:
    return (LedgerApplicationProvider(), LedgerSqlProvider(), LedgerServingProvider())


# The codes only the ledger answers with; the generic ones (VALIDATION_FAILED, OVERLOADED,
# DEADLINE_EXCEEDED, UNAVAILABLE, OUTCOME_UNKNOWN, CONCURRENCY_CONFLICT) belong to the kernel.
LEDGER = BoundedContext(
    name="ledger",
    providers=_providers,
    services=(
        GrpcService(
            descriptor=ledger_pb2.DESCRIPTOR.services_by_name["LedgerService"],
            servicer=LedgerService,
            add_to_server=ledger_pb2_grpc.add_LedgerServiceServicer_to_server,
            rules=LEDGER_API_RULES,
            examples=LEDGER_API_EXAMPLES,
            access=LEDGER_API_ACCESS,
            hidden=ledger_not_found,
        ),
    ),
    workers=(BackgroundWorker(name="expiry sweep", run=expiry_sweep),),
    commands=add_ledger_commands,
    error_codes=LEDGER_ERRORS,
    migrations=("ledgerd.ledger.adapters:migrations",),
)
