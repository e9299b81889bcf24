"""EnableWebhook and DisableWebhook: stop delivering to an endpoint, and start again.

A disabled endpoint keeps its place in the ledger's events: enabled again, it is delivered what
was written meanwhile, in order, as if it had been slow.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledgerd.kernel.clock import Clock
from ledgerd.kernel.unit_of_work import UnitOfWork, retry_on_conflict
from ledgerd.webhooks.application._lookups import check_names, require_webhook, webhook_not_found
from ledgerd.webhooks.application.ports import DeliveryWakeups
from ledgerd.webhooks.domain.deliveries import WebhookView
from ledgerd.webhooks.domain.repositories import (
    LedgerStreams,
    WebhookReadModel,
    WebhookRepository,
)


@dataclass(frozen=True, slots=True)
class SetWebhookEnabled:
    ledger: str
    webhook: str
    enabled: bool


class SetWebhookEnabledHandler:
    def __init__(  # noqa: PLR0913, PLR0917 - dishka: one parameter per dependency, each named
        self,
        uow: UnitOfWork,
        webhooks: WebhookRepository,
        views: WebhookReadModel,
        streams: LedgerStreams,
        clock: Clock,
        wakeups: DeliveryWakeups,
    ) -> None:
        self._uow, self._webhooks, self._views, self._streams = uow, webhooks, views, streams
        self._clock, self._wakeups = clock, wakeups

    async def __call__(self, command: SetWebhookEnabled) -> WebhookView:
        check_names(command.ledger, command.webhook)
        view = await retry_on_conflict(lambda: self._set(command))
        if command.enabled:
            self._wakeups.wake()
        return view

    async def _set(self, command: SetWebhookEnabled) -> WebhookView:
        async with self._uow.begin() as transaction:
            endpoint = await require_webhook(
                self._webhooks, self._streams, command.ledger, command.webhook
            )
            changed = endpoint.with_enabled(command.enabled, self._clock.now())
            if changed is not endpoint:
                await self._webhooks.save(changed)
            view = await self._views.view(endpoint.id)
            if view is None:
                raise webhook_not_found(command.webhook)
            await transaction.commit()
        return view
