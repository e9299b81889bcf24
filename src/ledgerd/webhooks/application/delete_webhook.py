"""DeleteWebhook: forget an endpoint, its place in the events, its attempts and dead letters.

A delivery in flight to it finishes; its outcome is then recorded nowhere. On PostgreSQL the
deletion waits for that delivery (it holds the endpoint's row), so none starts after it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledgerd.kernel.unit_of_work import UnitOfWork, retry_on_conflict
from ledgerd.webhooks.application._lookups import check_names, require_webhook
from ledgerd.webhooks.domain.repositories import LedgerStreams, WebhookRepository


@dataclass(frozen=True, slots=True)
class DeleteWebhook:
    ledger: str
    webhook: str


class DeleteWebhookHandler:
    def __init__(
        self, uow: UnitOfWork, webhooks: WebhookRepository, streams: LedgerStreams
    ) -> None:
        self._uow, self._webhooks, self._streams = uow, webhooks, streams

    async def __call__(self, command: DeleteWebhook) -> None:
        check_names(command.ledger, command.webhook)
        await retry_on_conflict(lambda: self._delete(command))

    async def _delete(self, command: DeleteWebhook) -> None:
        async with self._uow.begin() as transaction:
            endpoint = await require_webhook(
                self._webhooks, self._streams, command.ledger, command.webhook
            )
            await self._webhooks.delete(endpoint.id)
            await transaction.commit()
