"""RotateWebhookSecret: a new signing secret, with the old one signing too for a grace period.

During the grace period every delivery carries two signatures, one by each secret, so the
receiver can deploy the new secret whenever it likes within it and verify throughout. A grace
of zero ends the old secret at once (it leaked). Rotating again before a grace ends replaces
the older secret: there are never more than two.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from ledgerd.kernel.clock import Clock
from ledgerd.kernel.errors import validation_error
from ledgerd.kernel.unit_of_work import UnitOfWork, retry_on_conflict
from ledgerd.webhooks.application._lookups import check_names, require_webhook, webhook_not_found
from ledgerd.webhooks.domain.deliveries import WebhookView
from ledgerd.webhooks.domain.endpoints import (
    DEFAULT_SECRET_GRACE,
    MAX_SECRET_GRACE,
    new_signing_secret,
)
from ledgerd.webhooks.domain.repositories import (
    LedgerStreams,
    WebhookReadModel,
    WebhookRepository,
)


@dataclass(frozen=True, slots=True)
class RotateWebhookSecret:
    ledger: str
    webhook: str
    # None: 24 hours.
    grace: timedelta | None = None


@dataclass(frozen=True, slots=True)
class RotatedSecret:
    webhook: WebhookView
    # The new secret: in this answer only.
    secret: str


class RotateWebhookSecretHandler:
    def __init__(
        self,
        uow: UnitOfWork,
        webhooks: WebhookRepository,
        views: WebhookReadModel,
        streams: LedgerStreams,
        clock: Clock,
    ) -> None:
        self._uow, self._webhooks, self._views, self._streams = uow, webhooks, views, streams
        self._clock = clock

    async def __call__(self, command: RotateWebhookSecret) -> RotatedSecret:
        check_names(command.ledger, command.webhook)
        grace = DEFAULT_SECRET_GRACE if command.grace is None else command.grace
        if not timedelta(0) <= grace <= MAX_SECRET_GRACE:
            limit = int(MAX_SECRET_GRACE.total_seconds())
            raise validation_error("grace_seconds", f"must be between 0 and {limit}")
        return await retry_on_conflict(lambda: self._rotate(command, grace))

    async def _rotate(self, command: RotateWebhookSecret, grace: timedelta) -> RotatedSecret:
        async with self._uow.begin() as transaction:
            endpoint = await require_webhook(
                self._webhooks, self._streams, command.ledger, command.webhook
            )
            now = self._clock.now()
            secret = new_signing_secret()
            await self._webhooks.save(
                endpoint.with_secrets(endpoint.secrets.rotated(secret, now, grace), now)
            )
            view = await self._views.view(endpoint.id)
            if view is None:
                raise webhook_not_found(command.webhook)
            await transaction.commit()
        return RotatedSecret(view, secret)
