"""CreateWebhook: register an endpoint for a ledger's events, written from now on.

The endpoint starts after the last event its ledger has when it is created (earlier events are
history, not news), and gets a new signing secret, returned this once and never shown again.

With an idempotency key, a retry is safe (``domain/idempotency.py``): the same key with the same
request answers the endpoint the key created, as it is now, with its current secret (the one a
delivery is signed with now) and ``replayed`` set, and writes nothing; with another request it
is ``IDEMPOTENCY_CONFLICT``, as for transfers. Two creations racing with one key make one
endpoint: the unique index on the key decides, and the loser, rerun, finds the winner's and
answers it as a replay. The key of an endpoint deleted since stays spent: a late retry is
answered ``WEBHOOK_NOT_FOUND`` rather than bring back an endpoint its owner deleted.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledgerd.kernel.clock import Clock
from ledgerd.kernel.errors import LedgerdError, unavailable
from ledgerd.kernel.ids import IdGenerator, check_id
from ledgerd.kernel.text import check_text
from ledgerd.kernel.unit_of_work import UnitOfWork, retry_on_conflict
from ledgerd.ledger.published.errors import idempotency_conflict
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
from ledgerd.webhooks.domain.idempotency import CreationKey, KeyedCreation, creation_fingerprint
from ledgerd.webhooks.domain.repositories import (
    LedgerStreams,
    WebhookReadModel,
    WebhookRepository,
)


@dataclass(frozen=True, slots=True)
class CreateWebhook:
    ledger: str
    url: str
    description: str = ""
    event_types: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()
    # None: no key, and a retry creates another endpoint.
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class CreatedWebhook:
    webhook: WebhookView
    # The signing secret: in this answer only (and in a replay's, the current one).
    secret: str
    # The key had created the endpoint before: nothing was written.
    replayed: bool = False


class CreateWebhookHandler:
    def __init__(  # noqa: PLR0913, PLR0917 - dishka: one parameter per dependency, each named
        self,
        uow: UnitOfWork,
        webhooks: WebhookRepository,
        views: WebhookReadModel,
        streams: LedgerStreams,
        known: KnownEventTypes,
        clock: Clock,
        new_id: IdGenerator,
        wakeups: DeliveryWakeups,
        addresses: AddressPolicy,
    ) -> None:
        self._addresses = addresses
        self._uow, self._webhooks, self._views, self._streams = uow, webhooks, views, streams
        self._known, self._clock, self._new_id, self._wakeups = known, clock, new_id, wakeups

    async def __call__(self, command: CreateWebhook) -> CreatedWebhook:
        check_id(command.ledger, "ledger")
        url = check_url(command.url, self._addresses)
        description = check_text(
            command.description, "description", max_length=MAX_DESCRIPTION_LENGTH
        )
        chosen = event_filter(command.event_types, command.accounts, self._known)
        key = None
        if command.idempotency_key is not None:
            key = CreationKey(
                check_id(command.idempotency_key, "idempotency_key"),
                creation_fingerprint(url, description, chosen),
            )
        created = await retry_on_conflict(
            lambda: self._create(command.ledger, url, description, chosen, key)
        )
        if not created.replayed:
            self._wakeups.wake()
        return created

    async def _create(
        self, ledger: str, url: str, description: str, chosen: EventFilter, key: CreationKey | None
    ) -> CreatedWebhook:
        async with self._uow.begin() as transaction:
            stream = await require_ledger(self._streams, ledger)
            if key is not None:
                earlier = await self._webhooks.created_with(ledger, key.key)
                if earlier is not None:
                    # A replay writes nothing: leaving the block rolls the reads back.
                    return await self._replay(earlier, key)
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
                idempotency_key=None if key is None else key.key,
            )
            await self._webhooks.add(endpoint, after_sequence=stream.last_sequence, key=key)
            await transaction.commit()
        status = DeliveryStatus(stream.last_sequence, 0, None, None, 0)
        return CreatedWebhook(WebhookView(endpoint, status), secret)

    async def _replay(self, earlier: KeyedCreation, key: CreationKey) -> CreatedWebhook:
        """The answer to a key used before: the endpoint it made, or why there is none."""
        # Another request first, as for transfers: whatever became of the endpoint since, the
        # client reused a key, and that is what it must be told.
        if earlier.fingerprint != key.fingerprint:
            raise idempotency_conflict(
                key.key, original_field="webhook_id", original_id=earlier.webhook_id
            )
        view = None if earlier.deleted else await self._views.view(earlier.webhook_id)
        if view is None:
            raise LedgerdError(
                WebhookErrorCode.WEBHOOK_NOT_FOUND,
                f"webhook {earlier.webhook_id}, created with idempotency key {key.key!r}, was "
                "deleted; the key stays spent: create another webhook with a new key",
                {"webhook": earlier.webhook_id, "idempotency_key": key.key},
            )
        secrets = view.endpoint.secrets
        if secrets.unreadable is not None:
            # Sealed under a wrapping key this process does not hold (a key being rolled out):
            # a replica that holds it can answer, and rotating the secret mends it for good.
            raise unavailable(
                f"webhook {earlier.webhook_id}'s signing secret ({secrets.unreadable})"
            )
        return CreatedWebhook(view, secrets.current, replayed=True)
