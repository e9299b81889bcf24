"""The composition root: builds every component from settings. The only place that wires.

Repositories and handlers are stateless (the transaction travels in a contextvar), so they are
app-scoped singletons; the engine is the one resource with a lifetime, closed by the container.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from dishka import AsyncContainer, Provider, Scope, make_async_container, provide
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.kernel.clock import Clock, SystemClock
from ledgerd.kernel.ids import IdGenerator, random_id
from ledgerd.kernel.unit_of_work import UnitOfWork
from ledgerd.main.access_control import PipelineAuthentication, access_control
from ledgerd.main.bounded_context import BoundedContext, services_of
from ledgerd.main.call_pipeline import build_call_pipeline
from ledgerd.main.contexts import ENABLED_CONTEXTS
from ledgerd.main.publishers import build_publisher
from ledgerd.main.secrets import ResolvedSecrets
from ledgerd.main.settings import Settings
from ledgerd.platform.api.admission import Admission
from ledgerd.platform.api.pipeline import CallPipeline
from ledgerd.platform.concurrency import Notifier
from ledgerd.platform.db.engine import create_engine
from ledgerd.platform.db.unit_of_work import SqlAlchemyUnitOfWork
from ledgerd.platform.messaging.hub import InProcessHub
from ledgerd.platform.messaging.ports import Publisher
from ledgerd.platform.outbox.commits import CommittedStreams
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
    async def engine(
        self, settings: Settings, secrets: ResolvedSecrets
    ) -> AsyncIterator[AsyncEngine]:
        engine = create_engine(
            settings.database_url,
            pool_size=settings.database_pool_size,
            pool_timeout_s=settings.database_pool_timeout_seconds,
            connect_timeout_s=settings.database_connect_timeout_seconds,
            statement_timeout_s=settings.database_statement_timeout_seconds,
            echo=settings.database_echo,
            current_url=secrets.database_url(settings),
            credentials_refused=secrets.database_credentials_refused(),
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
    def call_pipeline(
        self, admission: Admission, authentication: PipelineAuthentication
    ) -> CallPipeline:
        """What every call passes through, gRPC or REST: one object both transports run."""
        return build_call_pipeline(admission, authentication.concern)


class SecretsProvider(Provider):
    """The values of the settings' `secret://` references, resolved before the container."""

    scope = Scope.APP

    def __init__(self, secrets: ResolvedSecrets) -> None:
        super().__init__()
        self._secrets = secrets

    @provide
    def secrets(self) -> ResolvedSecrets:
        return self._secrets


class OutboxProvider(Provider):
    """Events: written by the use cases' transactions, relayed to the configured publisher."""

    scope = Scope.APP

    @provide
    def relay_wakeups(self) -> Notifier:
        """Commits in this process that wrote events wake the relay through this."""
        return Notifier()

    @provide
    def committed_streams(self) -> CommittedStreams:
        """Commits in this process say here which stream (ledger) they wrote events to."""
        return CommittedStreams()

    @provide
    def writer(self, wakeups: Notifier, streams: CommittedStreams) -> OutboxWriter:
        return OutboxWriter(wake=wakeups.notify_all, committed=streams.committed)

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
    def relay(
        self, store: OutboxStore, publisher: Publisher, wakeups: Notifier, settings: Settings
    ) -> OutboxRelay:
        options = RelayOptions(
            batch_size=settings.relay_batch_size,
            max_rejections=settings.relay_max_rejections,
            poll_interval_s=settings.relay_poll_interval_seconds,
        )
        return OutboxRelay(store, publisher, wakeups=wakeups, options=options)


def build_container(
    settings: Settings,
    *overrides: Provider,
    contexts: Sequence[BoundedContext] = ENABLED_CONTEXTS,
    secrets: ResolvedSecrets | None = None,
) -> AsyncContainer:
    """The application container: the shared infrastructure and every context's providers.

    ``overrides`` (e.g. a fixed clock in tests) win over the defaults: later providers
    replace earlier registrations. ``secrets``: what ``resolve_settings`` made of the settings'
    references (none: the settings hold none).
    """
    return make_async_container(
        InfrastructureProvider(),
        SecretsProvider(secrets or ResolvedSecrets()),
        OutboxProvider(),
        *(provider for context in contexts for provider in context.providers()),
        access_control(settings, services_of(contexts)),
        *overrides,
        context={Settings: settings},
    )
