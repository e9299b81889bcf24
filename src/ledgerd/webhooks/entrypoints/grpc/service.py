"""The gRPC servicer of ``ledgerd.v1.WebhookService``: decode, call the use case, encode.

It raises domain errors as they come; the request pipeline maps them once per transport.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
from google.protobuf.empty_pb2 import Empty

from ledgerd.v1 import webhooks_pb2 as pb
from ledgerd.v1 import webhooks_pb2_grpc
from ledgerd.webhooks.application.create_webhook import CreateWebhook, CreateWebhookHandler
from ledgerd.webhooks.application.delete_webhook import DeleteWebhook, DeleteWebhookHandler
from ledgerd.webhooks.application.enable_webhook import (
    SetWebhookEnabled,
    SetWebhookEnabledHandler,
)
from ledgerd.webhooks.application.queries import WebhookQueries
from ledgerd.webhooks.application.replay_dead_letters import (
    ReplayDeadLetters,
    ReplayDeadLettersHandler,
)
from ledgerd.webhooks.application.rotate_secret import (
    RotateWebhookSecret,
    RotateWebhookSecretHandler,
)
from ledgerd.webhooks.application.update_webhook import UpdateWebhook, UpdateWebhookHandler
from ledgerd.webhooks.entrypoints.grpc import mapping

Context = grpc.aio.ServicerContext[Any, Any]


@dataclass(frozen=True, slots=True)
class WebhookUseCases:
    create: CreateWebhookHandler
    update: UpdateWebhookHandler
    set_enabled: SetWebhookEnabledHandler
    delete: DeleteWebhookHandler
    rotate_secret: RotateWebhookSecretHandler
    replay: ReplayDeadLettersHandler
    queries: WebhookQueries


class WebhookService(webhooks_pb2_grpc.WebhookServiceServicer):
    def __init__(self, use_cases: WebhookUseCases) -> None:
        self._u = use_cases

    async def CreateWebhook(
        self, request: pb.CreateWebhookRequest, context: Context
    ) -> pb.CreatedWebhook:
        created = await self._u.create(
            CreateWebhook(
                ledger=request.ledger,
                url=request.url,
                description=request.description,
                event_types=tuple(request.filter.event_types),
                accounts=tuple(request.filter.accounts),
                # proto3: an empty key is one not given.
                idempotency_key=request.idempotency_key or None,
            )
        )
        return pb.CreatedWebhook(
            webhook=mapping.webhook(created.webhook),
            secret=created.secret,
            replayed=created.replayed,
        )

    async def GetWebhook(self, request: pb.WebhookRequest, context: Context) -> pb.Webhook:
        return mapping.webhook(await self._u.queries.get(request.ledger, request.webhook))

    async def ListWebhooks(
        self, request: pb.ListWebhooksRequest, context: Context
    ) -> pb.ListWebhooksResponse:
        page = await self._u.queries.list(
            request.ledger, cursor=request.page_token or None, limit=request.page_size or None
        )
        return pb.ListWebhooksResponse(
            webhooks=[mapping.webhook(view) for view in page.items],
            next_page_token=page.next_cursor or "",
        )

    async def UpdateWebhook(self, request: pb.UpdateWebhookRequest, context: Context) -> pb.Webhook:
        given_filter = request.HasField("filter")
        view = await self._u.update(
            UpdateWebhook(
                ledger=request.ledger,
                webhook=request.webhook,
                # proto3: an empty URL is one not given (a URL is never empty).
                url=request.url or None,
                description=request.description if request.HasField("description") else None,
                event_types=tuple(request.filter.event_types) if given_filter else None,
                accounts=tuple(request.filter.accounts) if given_filter else None,
            )
        )
        return mapping.webhook(view)

    async def DisableWebhook(self, request: pb.WebhookRequest, context: Context) -> pb.Webhook:
        return mapping.webhook(
            await self._u.set_enabled(
                SetWebhookEnabled(request.ledger, request.webhook, enabled=False)
            )
        )

    async def EnableWebhook(self, request: pb.WebhookRequest, context: Context) -> pb.Webhook:
        return mapping.webhook(
            await self._u.set_enabled(
                SetWebhookEnabled(request.ledger, request.webhook, enabled=True)
            )
        )

    async def DeleteWebhook(self, request: pb.WebhookRequest, context: Context) -> Empty:
        await self._u.delete(DeleteWebhook(request.ledger, request.webhook))
        return Empty()

    async def RotateWebhookSecret(
        self, request: pb.RotateWebhookSecretRequest, context: Context
    ) -> pb.RotatedWebhookSecret:
        grace = (
            timedelta(seconds=request.grace_seconds) if request.HasField("grace_seconds") else None
        )
        rotated = await self._u.rotate_secret(
            RotateWebhookSecret(request.ledger, request.webhook, grace)
        )
        return pb.RotatedWebhookSecret(
            webhook=mapping.webhook(rotated.webhook), secret=rotated.secret
        )

    async def ListDeliveryAttempts(
        self, request: pb.ListDeliveryAttemptsRequest, context: Context
    ) -> pb.ListDeliveryAttemptsResponse:
        page = await self._u.queries.attempts(
            request.ledger,
            request.webhook,
            cursor=request.page_token or None,
            limit=request.page_size or None,
        )
        return pb.ListDeliveryAttemptsResponse(
            attempts=[mapping.attempt(attempt) for attempt in page.items],
            next_page_token=page.next_cursor or "",
        )

    async def ListDeadLetters(
        self, request: pb.ListDeadLettersRequest, context: Context
    ) -> pb.ListDeadLettersResponse:
        page = await self._u.queries.dead_letters(
            request.ledger,
            request.webhook,
            cursor=request.page_token or None,
            limit=request.page_size or None,
        )
        return pb.ListDeadLettersResponse(
            dead_letters=[mapping.dead_letter(letter) for letter in page.items],
            next_page_token=page.next_cursor or "",
        )

    async def ReplayDeadLetters(
        self, request: pb.ReplayDeadLettersRequest, context: Context
    ) -> pb.ReplayDeadLettersResponse:
        replayed = await self._u.replay(
            ReplayDeadLetters(request.ledger, request.webhook, request.from_sequence)
        )
        return pb.ReplayDeadLettersResponse(replayed=replayed)
