"""Checks several use cases share: the ledger, the endpoint, the filter."""

from __future__ import annotations

from collections.abc import Iterable

from ledgerd.kernel.errors import LedgerdError, validation_error
from ledgerd.kernel.ids import check_id, check_id_shape
from ledgerd.ledger.published.errors import ledger_not_found
from ledgerd.webhooks.application.ports import KnownEventTypes
from ledgerd.webhooks.domain.endpoints import (
    MAX_FILTER_ACCOUNTS,
    MAX_FILTER_EVENT_TYPES,
    EventFilter,
    WebhookEndpoint,
)
from ledgerd.webhooks.domain.errors import WebhookErrorCode
from ledgerd.webhooks.domain.repositories import LedgerStream, LedgerStreams, WebhookRepository


def webhook_not_found(webhook_id: str) -> LedgerdError:
    return LedgerdError(
        WebhookErrorCode.WEBHOOK_NOT_FOUND,
        f"webhook {webhook_id} does not exist",
        {"webhook": webhook_id},
    )


def check_names(ledger: str, webhook_id: str) -> None:
    check_id(ledger, "ledger")
    # An endpoint's id is the server's (32 hex digits); any id shape is looked up and not found.
    check_id_shape(webhook_id, "webhook")


async def require_ledger(streams: LedgerStreams, ledger: str) -> LedgerStream:
    stream = await streams.stream_of(ledger)
    if stream is None:
        raise ledger_not_found(ledger)
    return stream


async def require_webhook(
    webhooks: WebhookRepository, streams: LedgerStreams, ledger: str | None, webhook_id: str
) -> WebhookEndpoint:
    """The endpoint, if it belongs to ``ledger`` (None: whatever its ledger, for the CLI).

    An endpoint of another ledger is not found: a ledger's clients see only its endpoints.
    """
    endpoint = await webhooks.get(webhook_id)
    if endpoint is None or (ledger is not None and endpoint.ledger != ledger):
        if ledger is not None:
            await require_ledger(streams, ledger)
        raise webhook_not_found(webhook_id)
    return endpoint


def event_filter(
    event_types: Iterable[str], accounts: Iterable[str], known: KnownEventTypes
) -> EventFilter:
    """The filter of these lists; VALIDATION_FAILED for an unknown type or a malformed account."""
    types = list(event_types)
    if len(types) > MAX_FILTER_EVENT_TYPES:
        raise validation_error(
            "filter.event_types", f"names at most {MAX_FILTER_EVENT_TYPES} types"
        )
    for name in types:
        if name not in known.names:
            raise validation_error(
                "filter.event_types",
                f"{name!r} is not an event type; the types are {', '.join(sorted(known.names))}",
            )
    names = list(accounts)
    if len(names) > MAX_FILTER_ACCOUNTS:
        raise validation_error("filter.accounts", f"names at most {MAX_FILTER_ACCOUNTS} accounts")
    for name in names:
        check_id(name, "filter.accounts")
    return EventFilter(frozenset(types), frozenset(names))
