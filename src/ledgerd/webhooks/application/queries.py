"""The read side: an endpoint, a ledger's endpoints, an endpoint's attempts and dead letters."""

from __future__ import annotations

from ledgerd.kernel.ids import check_id, check_id_shape
from ledgerd.kernel.paging import Page, check_page_size
from ledgerd.kernel.unit_of_work import UnitOfWork
from ledgerd.webhooks.application._lookups import (
    check_names,
    require_ledger,
    require_webhook,
    webhook_not_found,
)
from ledgerd.webhooks.domain.deliveries import DeadLetter, DeliveryAttempt, WebhookView
from ledgerd.webhooks.domain.repositories import (
    LedgerStreams,
    WebhookReadModel,
    WebhookRepository,
)


class WebhookQueries:
    def __init__(
        self,
        uow: UnitOfWork,
        webhooks: WebhookRepository,
        views: WebhookReadModel,
        streams: LedgerStreams,
    ) -> None:
        self._uow, self._webhooks, self._views, self._streams = uow, webhooks, views, streams

    async def get(self, ledger: str, webhook_id: str) -> WebhookView:
        check_names(ledger, webhook_id)
        async with self._uow.begin(read_only=True):
            endpoint = await require_webhook(self._webhooks, self._streams, ledger, webhook_id)
            view = await self._views.view(endpoint.id)
        if view is None:
            raise webhook_not_found(webhook_id)
        return view

    async def list(
        self, ledger: str, *, cursor: str | None = None, limit: int | None = None
    ) -> Page[WebhookView]:
        check_id(ledger, "ledger")
        size = check_page_size(limit)
        async with self._uow.begin(read_only=True):
            await require_ledger(self._streams, ledger)
            return await self._views.views(ledger, cursor=cursor, limit=size)

    async def attempts(
        self,
        ledger: str,
        webhook_id: str,
        *,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[DeliveryAttempt]:
        check_names(ledger, webhook_id)
        size = check_page_size(limit)
        async with self._uow.begin(read_only=True):
            endpoint = await require_webhook(self._webhooks, self._streams, ledger, webhook_id)
            return await self._views.attempts(endpoint.id, cursor=cursor, limit=size)

    async def dead_letters(
        self,
        ledger: str | None,
        webhook_id: str,
        *,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[DeadLetter]:
        """``ledger`` None: the endpoint's own, whichever it is (the command line)."""
        if ledger is None:
            check_id_shape(webhook_id, "webhook")
        else:
            check_names(ledger, webhook_id)
        size = check_page_size(limit)
        async with self._uow.begin(read_only=True):
            endpoint = await require_webhook(self._webhooks, self._streams, ledger, webhook_id)
            return await self._views.dead_letters(endpoint.id, cursor=cursor, limit=size)
