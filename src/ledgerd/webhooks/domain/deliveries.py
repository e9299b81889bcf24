"""What became of deliveries: attempts, dead letters, and where an endpoint stands."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from ledgerd.webhooks.domain.endpoints import WebhookEndpoint
from ledgerd.webhooks.domain.retries import RetryPolicy

_SUCCESS_MIN, _SUCCESS_MAX = 200, 299


class AttemptOutcome(StrEnum):
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"
    DEAD_LETTERED = "DEAD_LETTERED"
    # A shutdown cut the attempt short: its event is tried again, the attempt not counted.
    INTERRUPTED = "INTERRUPTED"


@dataclass(frozen=True, slots=True)
class Response:
    """How one request ended: a status (any, 2xx or not), or no answer and why."""

    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def acknowledged(self) -> bool:
        return self.status_code is not None and _SUCCESS_MIN <= self.status_code <= _SUCCESS_MAX

    def failure(self) -> str:
        """Why it is no acknowledgement, for the attempt's record."""
        if self.error is not None:
            return self.error
        return f"HTTP {self.status_code}"


def outcome_of(response: Response, attempt: int, policy: RetryPolicy) -> AttemptOutcome:
    """Delivered on a 2xx; else failed, or dead-lettered if ``attempt`` was the last allowed."""
    if response.acknowledged:
        return AttemptOutcome.DELIVERED
    if policy.gives_up_after(attempt):
        return AttemptOutcome.DEAD_LETTERED
    return AttemptOutcome.FAILED


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One request made to deliver one event, as recorded."""

    webhook_id: str
    sequence: int
    event_id: str
    event_type: str
    attempt: int
    replay: bool
    started_at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None
    outcome: AttemptOutcome


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event an endpoint failed at every attempt; kept until it is delivered by a replay."""

    webhook_id: str
    sequence: int
    event_id: str
    event_type: str
    attempts: int
    last_error: str
    dead_at: datetime
    replay_requested: bool


@dataclass(frozen=True, slots=True)
class DeliveryStatus:
    """Where an endpoint's deliveries stand (its cursor over the ledger's events)."""

    delivered_sequence: int
    failed_attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    dead_letters: int


@dataclass(frozen=True, slots=True)
class WebhookView:
    """An endpoint as the API shows it: its settings and how its deliveries stand."""

    endpoint: WebhookEndpoint
    status: DeliveryStatus
