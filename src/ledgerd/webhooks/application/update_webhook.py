"""UpdateWebhook: change an endpoint's URL, description or filter, keeping what is not given.

Its place in the ledger's events does not move: a new filter applies from the next event it
looks at, a new URL from the next attempt (a failing event is tried at the new URL next).
"""

from __future__ import annotations

from dataclasses import dataclass

from ledgerd.kernel.clock import Clock
from ledgerd.kernel.text import check_text
from ledgerd.kernel.unit_of_work import UnitOfWork, retry_on_conflict
from ledgerd.webhooks.application._lookups import (
    check_names,
    event_filter,
    require_webhook,
    webhook_not_found,
)
from ledgerd.webhooks.application.ports import DeliveryWakeups, KnownEventTypes
from ledgerd.webhooks.domain.addresses import AddressPolicy
from ledgerd.webhooks.domain.deliveries import WebhookView
from ledgerd.webhooks.domain.endpoints import MAX_DESCRIPTION_LENGTH, EventFilter, check_url
from ledgerd.webhooks.domain.repositories import (
    LedgerStreams,
    WebhookReadModel,
    WebhookRepository,
)


@dataclass(frozen=True, slots=True)
class UpdateWebhook:
    """None keeps what is there; a filter part given replaces that part (empty: every event)."""

    ledger: str
    webhook: str
    url: str | None = None
    description: str | None = None
    event_types: tuple[str, ...] | None = None
    accounts: tuple[str, ...] | None = None


class UpdateWebhookHandler:
    def __init__(  # noqa: PLR0913, PLR0917 - dishka: one parameter per dependency, each named
        self,
        uow: UnitOfWork,
        webhooks: WebhookRepository,
        views: WebhookReadModel,
        streams: LedgerStreams,
        known: KnownEventTypes,
        clock: Clock,
        wakeups: DeliveryWakeups,
        addresses: AddressPolicy,
    ) -> None:
        self._addresses = addresses
        self._uow, self._webhooks, self._views, self._streams = uow, webhooks, views, streams
        self._known, self._clock, self._wakeups = known, clock, wakeups

    async def __call__(self, command: UpdateWebhook) -> WebhookView:
        check_names(command.ledger, command.webhook)
        url = None if command.url is None else check_url(command.url, self._addresses)
        if command.description is not None:
            check_text(command.description, "description", max_length=MAX_DESCRIPTION_LENGTH)
        changed_filter = command.event_types is not None or command.accounts is not None
        # Checked before the endpoint is read, so a bad filter is refused however it merges.
        checked = event_filter(command.event_types or (), command.accounts or (), self._known)
        view = await retry_on_conflict(
            lambda: self._update(command, url, checked if changed_filter else None)
        )
        # A filter that now matches events waiting, or a URL that now answers: go at once.
        self._wakeups.wake()
        return view

    async def _update(
        self, command: UpdateWebhook, url: str | None, checked: EventFilter | None
    ) -> WebhookView:
        async with self._uow.begin() as transaction:
            endpoint = await require_webhook(
                self._webhooks, self._streams, command.ledger, command.webhook
            )
            if checked is not None:
                # A part not given keeps the stored one.
                checked = EventFilter(
                    endpoint.filter.event_types
                    if command.event_types is None
                    else checked.event_types,
                    endpoint.filter.accounts if command.accounts is None else checked.accounts,
                )
            changed = endpoint.changed(
                self._clock.now(), url=url, description=command.description, event_filter=checked
            )
            await self._webhooks.save(changed)
            view = await self._views.view(changed.id)
            if view is None:  # deleted meanwhile (SQLite has no row lock to prevent it)
                raise webhook_not_found(command.webhook)
            await transaction.commit()
        return view
