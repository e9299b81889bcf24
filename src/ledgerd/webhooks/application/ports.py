"""What the webhooks' use cases and dispatcher need from outside, as Protocols and values.

The dispatcher's ports are about deliveries: ``DeliveryQueue`` hands out one endpoint at a time
with the next event it should receive, and records how the attempt went; ``WebhookSender``
makes the HTTP request. The adapters implement them on the database and on httpx.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ledgerd.webhooks.domain.deliveries import DeliveryAttempt, Response
from ledgerd.webhooks.domain.endpoints import WebhookEndpoint
from ledgerd.webhooks.domain.signatures import Delivery


@dataclass(frozen=True, slots=True)
class KnownEventTypes:
    """The CloudEvents types a filter may name: the events the ledger writes."""

    names: frozenset[str]


class DeliveryWakeups(Protocol):
    """Tell this process's dispatcher that there is new work (a replay, an endpoint enabled)."""

    def wake(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Schedule:
    """Which endpoints have work due now, and when the next one waiting on a back-off is due."""

    due: tuple[str, ...]
    next_due_at: datetime | None


class DeliveryClaim(Protocol):
    """One endpoint, held by this dispatcher alone until the claim's block ends.

    ``delivery`` is the next event the endpoint should receive: a dead letter asked to be
    replayed first, else the next event of its ledger that its filter matches. None when there
    is none yet: the events looked at (if any) did not match, and ``skip`` records them as
    handled; ``more`` says that events are left beyond those looked at.
    """

    @property
    def endpoint(self) -> WebhookEndpoint: ...

    @property
    def failed_attempts(self) -> int:
        """Failed attempts so far at ``delivery`` (0: this is the first)."""
        ...

    @property
    def delivery(self) -> Delivery | None: ...

    @property
    def more(self) -> bool: ...

    async def skip(self) -> None: ...

    async def record(self, attempt: DeliveryAttempt, *, retry_at: datetime | None) -> None:
        """Record ``attempt`` and move on as its outcome says (``retry_at``: when it failed)."""
        ...


class DeliveryQueue(Protocol):
    async def schedule(self, now: datetime) -> Schedule: ...

    def claim(
        self, webhook_id: str, now: datetime
    ) -> AbstractAsyncContextManager[DeliveryClaim | None]:
        """The endpoint, if it is enabled, due, and not held by another dispatcher; else None."""
        ...

    async def record_interrupted(self, attempt: DeliveryAttempt) -> None:
        """Record an attempt a shutdown cut short; the endpoint's place does not move."""
        ...


class WebhookSender(Protocol):
    async def post(self, url: str, headers: Mapping[str, str], body: bytes) -> Response:
        """POST ``body``; how it ended, never raising for the endpoint's failures."""
        ...


@dataclass(frozen=True, slots=True)
class AttemptPosition:
    """An attempt's place in the retention's order: when it started, then its number."""

    started_at: datetime
    number: int


@dataclass(frozen=True, slots=True)
class SweptBatch:
    deleted: int
    # How many old attempts the batch looked at: the deleted ones and the kept ones.
    read: int
    # The last attempt looked at, in the retention's order (None when there was none).
    last: AttemptPosition | None


class AttemptRecords(Protocol):
    """The record of delivery attempts, as far as keeping it bounded is concerned."""

    async def delete_older_than(
        self, cutoff: datetime, limit: int, after: AttemptPosition | None = None
    ) -> SweptBatch:
        """Look at the next ``limit`` attempts started before ``cutoff``; delete those not kept.

        The next ones after ``after`` in the retention's order (oldest first): a sweep passes
        the previous batch's last, so each old attempt is looked at once a sweep, the kept
        ones too. Fewer than ``limit`` read: there are no more.

        Kept whatever their age: the attempts at an event still dead-lettered for its endpoint
        (what an operator reads before replaying it), and each endpoint's last attempt (when it
        was last tried and how it answered).
        """
        ...
