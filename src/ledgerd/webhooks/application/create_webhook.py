"""CreateWebhook: register an endpoint for a ledger's events, written from now on.

The endpoint starts after the last event its ledger has when it is created (earlier events are
history, not news), and gets a new signing secret, returned this once and never shown again.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledgerd.kernel.clock import Clock
from ledgerd.kernel.errors import LedgerdError
from ledgerd.kernel.ids import IdGenerator, check_id
from ledgerd.kernel.text import check_text
from ledgerd.kernel.unit_of_work import UnitOfWork, retry_on_conflict
from ledgerd.webhooks.application._lookups import event_filter, require_ledger
from ledgerd.webhooks.application.ports import DeliveryWakeups, KnownEventTypes
from ledgerd.webhooks.domain.addresses import AddressPolicy
from ledgerd.webhooks.domain.deliveries import DeliveryStatus, WebhookView
from ledgerd.webhooks.domain.endpoints import (
    MAX_DESCRIPTION_LENGTH,
    MAX_ENDPOINTS_PER_LEDGER,
    EventFilter,
    SigningSecrets,
    WebhookEndpoint,
    check_url,
    new_signing_secret,
)
from ledgerd.webhooks.domain.errors import WebhookErrorCode
from ledgerd.webhooks.domain.repositories import LedgerStreams, WebhookRepository


@dataclass(frozen=True, slots=True)
class CreateWebhook:
    ledger: str
    url: str
    description: str = ""
    event_types: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CreatedWebhook:
    webhook: WebhookView
    # The signing secret: in this answer only.
    secret: str


class CreateWebhookHandler:
    def __init__(  # noqa: PLR0913, PLR0917 - dishka: one parameter per dependency, each named
        self,
        uow: UnitOfWork,
        webhooks: WebhookRepository,
        streams: LedgerStreams,
        known: KnownEventTypes,
        clock: Clock,
        new_id: IdGenerator,
        wakeups: DeliveryWakeups,
        addresses: AddressPolicy,
    ) -> None:
        self._addresses = addresses
        self._uow, self._webhooks, self._streams = uow, webhooks, streams
        self._known, self._clock, self._new_id, self._wakeups = known, clock, new_id, wakeups

    async def __call__(self, command: CreateWebhook) -> CreatedWebhook:
        check_id(command.ledger, "ledger")
        url = check_url(command.url, self._addresses)
        description = check_text(
            command.description, "description", max_length=MAX_DESCRIPTION_LENGTH
        )
        chosen = event_filter(command.event_types, command.accounts, self._known)
        created = await retry_on_conflict(
            lambda: self._create(command.ledger, url, description, chosen)
        )
        self._wakeups.wake()
        return created

    async def _create(
        self, ledger: str, url: str, description: str, chosen: EventFilter
    ) -> CreatedWebhook:
        async with self._uow.begin() as transaction:
            stream = await require_ledger(self._streams, ledger)
            if await self._webhooks.count_in(ledger) >= MAX_ENDPOINTS_PER_LEDGER:
                raise LedgerdError(
                    WebhookErrorCode.WEBHOOK_LIMIT_REACHED,
                    f"ledger {ledger} has {MAX_ENDPOINTS_PER_LEDGER} webhooks already, the most "
                    "it may; delete one first",
                    {"ledger": ledger, "limit": str(MAX_ENDPOINTS_PER_LEDGER)},
                )
            now = self._clock.now()
            secret = new_signing_secret()
            endpoint = WebhookEndpoint(
                id=self._new_id(),
                ledger=ledger,
                url=url,
                description=description,
                filter=chosen,
                enabled=True,
                secrets=SigningSecrets(secret),
                created_at=now,
                updated_at=now,
            )
            await self._webhooks.add(endpoint, after_sequence=stream.last_sequence)
            await transaction.commit()
        status = DeliveryStatus(stream.last_sequence, 0, None, None, 0)
        return CreatedWebhook(WebhookView(endpoint, status), secret)
