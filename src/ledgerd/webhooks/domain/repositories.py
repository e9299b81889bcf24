"""The ports the webhooks context stores through, inside the caller's unit of work."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ledgerd.kernel.paging import Page
from ledgerd.webhooks.domain.deliveries import DeadLetter, DeliveryAttempt, WebhookView
from ledgerd.webhooks.domain.endpoints import WebhookEndpoint
from ledgerd.webhooks.domain.idempotency import CreationKey, KeyedCreation


class WebhookRepository(Protocol):
    async def get(self, webhook_id: str) -> WebhookEndpoint | None: ...

    async def add(
        self, endpoint: WebhookEndpoint, *, after_sequence: int, key: CreationKey | None = None
    ) -> None:
        """Store a new endpoint whose deliveries start after event ``after_sequence``.

        With ``key``: a concurrent creation that stored the same key in the ledger first makes
        this one fail as a lost race (``ConcurrencyConflictError``), so that it is rerun and
        finds that creation.
        """
        ...

    async def created_with(self, ledger: str, key: str) -> KeyedCreation | None:
        """What ``key`` created in ``ledger``, also if it was deleted since; None: unused."""
        ...

    async def save(self, endpoint: WebhookEndpoint) -> None:
        """Store the changed settings of an existing endpoint (its deliveries untouched)."""
        ...

    async def delete(self, webhook_id: str) -> None:
        """Forget the endpoint, its deliveries' state, attempts and dead letters.

        The idempotency key it was created with (if any) is kept, spent, with its fingerprint.
        """
        ...

    async def count_in(self, ledger: str) -> int: ...


class WebhookReadModel(Protocol):
    """What the API shows of endpoints and their deliveries."""

    async def view(self, webhook_id: str) -> WebhookView | None: ...

    async def views(self, ledger: str, *, cursor: str | None, limit: int) -> Page[WebhookView]:
        """The ledger's endpoints by id, from where the page ``cursor`` ended."""
        ...

    async def attempts(
        self, webhook_id: str, *, cursor: str | None, limit: int
    ) -> Page[DeliveryAttempt]:
        """The latest attempts first, from where the page ``cursor`` ended (None: the start).

        A cursor this method did not make is VALIDATION_FAILED.
        """
        ...

    async def dead_letters(
        self, webhook_id: str, *, cursor: str | None, limit: int
    ) -> Page[DeadLetter]:
        """By sequence, from where the page ``cursor`` ended (None: the start)."""
        ...


class DeadLetterQueue(Protocol):
    async def request_replay(self, webhook_id: str, *, from_sequence: int) -> int:
        """Mark the dead letters from ``from_sequence`` on for delivery; how many were marked.

        The endpoint's back-off is cleared, so the replay starts at the next delivery round.
        """
        ...


@dataclass(frozen=True, slots=True)
class LedgerStream:
    """A ledger as the webhooks know it: its event stream, and how far that has got."""

    ledger: str
    last_sequence: int


class LedgerStreams(Protocol):
    """The ledgers' event streams (each ledger's events, from its ``LedgerCreated`` on)."""

    async def stream_of(self, ledger: str) -> LedgerStream | None:
        """The ledger's stream, or None: no such ledger."""
        ...
