"""The webhooks context, as the composition root composes it: one module, one description.

Its providers (SQL repositories, the ledgers' streams on the outbox, the use cases, the
servicer, the dispatcher with its HTTP sender and delivery queue), its gRPC service (REST
follows; its field rules, API examples and the scope each RPC needs), its background worker
(the dispatcher: in ``ledgerd worker``, and in ``serve`` on the embedded database), its
commands, its error codes and its migrations. The shared wiring takes them from ``WEBHOOKS`` in
``ledgerd.main.contexts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

from dishka import AsyncContainer, Provider, Scope, provide, provide_all
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.kernel.clock import SystemClock
from ledgerd.ledger.published.errors import ledger_not_found
from ledgerd.ledger.published.events import MESSAGES
from ledgerd.main.bounded_context import BackgroundWorker, BoundedContext, GrpcService, first_ended
from ledgerd.main.contexts.webhooks_commands import add_webhooks_commands
from ledgerd.main.relaying import listen_to_outbox
from ledgerd.main.settings import WEBHOOKS_CA_FILE_SETTING, Settings
from ledgerd.main.wrapping import database_wrapping_keys
from ledgerd.platform.concurrency import Notifier
from ledgerd.platform.db.engine import is_sqlite
from ledgerd.platform.db.unit_of_work import SqlAlchemyUnitOfWork
from ledgerd.platform.tls.certificate_files import read_certificate_bundle
from ledgerd.v1 import webhooks_pb2, webhooks_pb2_grpc
from ledgerd.webhooks.adapters.http_sender import HttpWebhookSender
from ledgerd.webhooks.adapters.sealed_secrets import WebhookSecretSealing
from ledgerd.webhooks.adapters.sql_attempt_records import SqlAttemptRecords
from ledgerd.webhooks.adapters.sql_delivery_queue import SqlDeliveryQueue
from ledgerd.webhooks.adapters.sql_repositories import (
    OutboxLedgerStreams,
    SqlDeadLetterQueue,
    SqlWebhookReadModel,
    SqlWebhookRepository,
)
from ledgerd.webhooks.application.create_webhook import CreateWebhookHandler
from ledgerd.webhooks.application.delete_webhook import DeleteWebhookHandler
from ledgerd.webhooks.application.dispatch import DispatchOptions, WebhookDispatcher
from ledgerd.webhooks.application.enable_webhook import SetWebhookEnabledHandler
from ledgerd.webhooks.application.ports import DeliveryWakeups, KnownEventTypes
from ledgerd.webhooks.application.queries import WebhookQueries
from ledgerd.webhooks.application.replay_dead_letters import ReplayDeadLettersHandler
from ledgerd.webhooks.application.retention import AttemptRetention, RetentionPolicy
from ledgerd.webhooks.application.rotate_secret import RotateWebhookSecretHandler
from ledgerd.webhooks.application.update_webhook import UpdateWebhookHandler
from ledgerd.webhooks.domain.addresses import AddressPolicy, parse_networks
from ledgerd.webhooks.domain.repositories import (
    DeadLetterQueue,
    LedgerStreams,
    WebhookReadModel,
    WebhookRepository,
)
from ledgerd.webhooks.domain.retries import RetryPolicy
from ledgerd.webhooks.entrypoints.errors import WEBHOOK_ERRORS
from ledgerd.webhooks.entrypoints.grpc.api_access import WEBHOOK_API_ACCESS
from ledgerd.webhooks.entrypoints.grpc.api_examples import WEBHOOK_API_EXAMPLES
from ledgerd.webhooks.entrypoints.grpc.api_rules import WEBHOOK_API_RULES
from ledgerd.webhooks.entrypoints.grpc.service import WebhookService, WebhookUseCases

log = logging.getLogger(__name__)


class NotifierWakeups:
    """New work for this process's dispatcher, rung on the notifier of commits that wrote events.

    The same one the outbox relay waits on: a wake-up it did not need costs it one empty look.
    """

    def __init__(self, notifier: Notifier) -> None:
        self._notifier = notifier

    def wake(self) -> None:
        self._notifier.notify_all()


class WebhookSqlProvider(Provider):
    """The webhooks' ports on the database, and the ledgers' streams on the outbox."""

    scope = Scope.APP

    @provide
    def secret_sealing(self, settings: Settings) -> WebhookSecretSealing:
        return WebhookSecretSealing(database_wrapping_keys(settings))

    webhooks = provide(SqlWebhookRepository, provides=WebhookRepository)
    views = provide(SqlWebhookReadModel, provides=WebhookReadModel)
    dead_letters = provide(SqlDeadLetterQueue, provides=DeadLetterQueue)
    streams = provide(OutboxLedgerStreams, provides=LedgerStreams)


class WebhookApplicationProvider(Provider):
    """The use cases, on their ports and the event types the ledger publishes."""

    scope = Scope.APP

    @provide
    def known_event_types(self) -> KnownEventTypes:
        return KnownEventTypes(frozenset(MESSAGES))

    @provide
    def wakeups(self, notifier: Notifier) -> DeliveryWakeups:
        return NotifierWakeups(notifier)

    @provide
    def addresses(self, settings: Settings) -> AddressPolicy:
        return address_policy(settings)

    use_cases = provide_all(
        CreateWebhookHandler,
        UpdateWebhookHandler,
        SetWebhookEnabledHandler,
        DeleteWebhookHandler,
        RotateWebhookSecretHandler,
        ReplayDeadLettersHandler,
        WebhookQueries,
    )


class WebhookServingProvider(Provider):
    """The servicer, and the dispatcher with its sender and queue, on the settings."""

    scope = Scope.APP

    serving = provide_all(WebhookUseCases, WebhookService)

    @provide
    async def sender(
        self, settings: Settings, addresses: AddressPolicy
    ) -> AsyncIterator[HttpWebhookSender]:
        sender = HttpWebhookSender(
            timeout_s=settings.webhooks_timeout_seconds,
            max_connections=settings.webhooks_concurrency,
            addresses=addresses,
            trusted_cas=trusted_cas(settings),
        )
        yield sender
        await sender.aclose()

    @provide
    def dispatcher(
        self,
        engine: AsyncEngine,
        sender: HttpWebhookSender,
        wakeups: Notifier,
        settings: Settings,
        sealing: WebhookSecretSealing,
    ) -> WebhookDispatcher:
        return WebhookDispatcher(
            SqlDeliveryQueue(SqlAlchemyUnitOfWork(engine), sealing=sealing),
            sender,
            retry_policy(settings),
            DispatchOptions(
                concurrency=settings.webhooks_concurrency,
                poll_interval_s=settings.webhooks_poll_interval_seconds,
            ),
            wakeups=wakeups,
        )

    @provide
    def retention(self, engine: AsyncEngine, settings: Settings) -> AttemptRetention:
        # The system clock, as the dispatcher's: attempts are stamped with the time they were
        # made (the dispatcher's own clock), so their age is measured on that one.
        return AttemptRetention(
            SqlAttemptRecords(SqlAlchemyUnitOfWork(engine)),
            RetentionPolicy(days=settings.webhooks_attempts_retention_days),
            SystemClock(),
        )


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        first_delay_s=settings.webhooks_first_retry_seconds,
        max_delay_s=settings.webhooks_max_retry_seconds,
        max_attempts=settings.webhooks_max_attempts,
    )


def address_policy(settings: Settings) -> AddressPolicy:
    """Where deliveries may connect: public addresses and ``LEDGERD_WEBHOOKS_ALLOWED_NETWORKS``."""
    return AddressPolicy(parse_networks(settings.webhooks_allowed_networks))


def trusted_cas(settings: Settings) -> bytes | None:
    """The PEM bundle of ``LEDGERD_WEBHOOKS_CA_FILE``, trusted besides the public roots; or None.

    Checked again as it is read (the settings checked it at start-up): a file gone since is
    ``CertificateFileError`` naming the setting, not a sender that trusts less than it was told.
    """
    if settings.webhooks_ca_file is None:
        return None
    return read_certificate_bundle(WEBHOOKS_CA_FILE_SETTING, settings.webhooks_ca_file)


def delivers_in_serve(settings: Settings) -> bool:
    """Whether ``serve`` delivers itself: the embedded database has no other process to do it."""
    if settings.webhooks_in_serve == "auto":
        return is_sqlite(settings.database_url)
    return settings.webhooks_in_serve == "on"


@contextlib.asynccontextmanager
async def delivering(
    container: AsyncContainer, settings: Settings, _command: str
) -> AsyncIterator[asyncio.Future[None]]:
    """The dispatcher (and, on PostgreSQL, its NOTIFY listener) runs while the block does.

    So does the sweep that deletes attempts past their retention (``application/retention.py``),
    where the deliveries that write them run.

    Leaving lets the attempts in flight finish, for up to ``LEDGERD_SHUTDOWN_GRACE_SECONDS``;
    those still running then are cut short and recorded as interrupted, and their events are
    delivered again by the next dispatcher.
    """
    dispatcher = await container.get(WebhookDispatcher)
    stop = asyncio.Event()
    retention = await container.get(AttemptRetention)
    tasks = [
        asyncio.create_task(dispatcher.run(stop), name="webhook-dispatcher"),
        asyncio.create_task(retention.run(stop), name="webhook-attempts-retention"),
    ]
    if not is_sqlite(settings.database_url):
        tasks.append(
            asyncio.create_task(
                listen_to_outbox(container, settings, dispatcher.wake, stop),
                name="webhook-listener",
            )
        )
    try:
        yield first_ended(tasks)
    finally:
        stop.set()
        try:
            async with asyncio.timeout(settings.shutdown_grace_seconds):
                await asyncio.gather(*tasks, return_exceptions=True)
        except TimeoutError:
            log.warning("webhook deliveries in flight did not finish in time; they go again")
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _providers() -> Sequence[Provider]:
    return (WebhookSqlProvider(), WebhookApplicationProvider(), WebhookServingProvider())


WEBHOOKS = BoundedContext(
    name="webhooks",
    providers=_providers,
    services=(
        GrpcService(
            descriptor=webhooks_pb2.DESCRIPTOR.services_by_name["WebhookService"],
            servicer=WebhookService,
            add_to_server=webhooks_pb2_grpc.add_WebhookServiceServicer_to_server,
            rules=WEBHOOK_API_RULES,
            examples=WEBHOOK_API_EXAMPLES,
            access=WEBHOOK_API_ACCESS,
            # A ledger the caller may not see is answered as the ledger itself answers it.
            hidden=ledger_not_found,
        ),
    ),
    workers=(
        BackgroundWorker(name="webhook deliveries", run=delivering, in_serve=delivers_in_serve),
    ),
    commands=add_webhooks_commands,
    error_codes=WEBHOOK_ERRORS,
    migrations=("ledgerd.webhooks.adapters:migrations",),
)
