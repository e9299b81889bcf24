"""Translation between the webhooks API's messages and the context's values."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from ledgerd.v1 import webhooks_pb2 as pb
from ledgerd.webhooks.domain.deliveries import (
    AttemptOutcome,
    DeadLetter,
    DeliveryAttempt,
    WebhookView,
)

_OUTCOME = {
    AttemptOutcome.DELIVERED: pb.DeliveryAttempt.DELIVERED,
    AttemptOutcome.FAILED: pb.DeliveryAttempt.FAILED,
    AttemptOutcome.DEAD_LETTERED: pb.DeliveryAttempt.DEAD_LETTERED,
    AttemptOutcome.INTERRUPTED: pb.DeliveryAttempt.INTERRUPTED,
}


def timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value.astimezone(UTC))
    return stamp


def webhook(view: WebhookView) -> pb.Webhook:
    endpoint, status = view.endpoint, view.status
    message = pb.Webhook(
        id=endpoint.id,
        ledger=endpoint.ledger,
        url=endpoint.url,
        description=endpoint.description,
        filter=pb.WebhookFilter(
            event_types=sorted(endpoint.filter.event_types),
            accounts=sorted(endpoint.filter.accounts),
        ),
        enabled=endpoint.enabled,
        created_at=timestamp(endpoint.created_at),
        updated_at=timestamp(endpoint.updated_at),
        delivered_sequence=status.delivered_sequence,
        failed_attempts=status.failed_attempts,
        last_error=status.last_error or "",
        dead_letters=status.dead_letters,
        idempotency_key=endpoint.idempotency_key or "",
    )
    if status.next_attempt_at is not None:
        message.next_attempt_at.CopyFrom(timestamp(status.next_attempt_at))
    if endpoint.secrets.previous_expires_at is not None:
        message.previous_secret_expires_at.CopyFrom(timestamp(endpoint.secrets.previous_expires_at))
    return message


def attempt(value: DeliveryAttempt) -> pb.DeliveryAttempt:
    return pb.DeliveryAttempt(
        sequence=value.sequence,
        event_id=value.event_id,
        event_type=value.event_type,
        attempt=value.attempt,
        replay=value.replay,
        started_at=timestamp(value.started_at),
        duration_ms=value.duration_ms,
        status_code=value.status_code or 0,
        error=value.error or "",
        outcome=_OUTCOME[value.outcome],
    )


def dead_letter(value: DeadLetter) -> pb.DeadLetter:
    return pb.DeadLetter(
        sequence=value.sequence,
        event_id=value.event_id,
        event_type=value.event_type,
        attempts=value.attempts,
        last_error=value.last_error,
        dead_at=timestamp(value.dead_at),
        replay_requested=value.replay_requested,
    )
