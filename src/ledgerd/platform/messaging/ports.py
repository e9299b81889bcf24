"""The messaging ports: publish envelopes to a broker, receive them back.

Delivery is at least once everywhere: a publisher may hand the same envelope over again after
a failure it cannot see past (the relay retries what it could not confirm), and a subscriber
redelivers whatever was not acknowledged. Consumers make that effectively once by
remembering the ids they handled (the inbox); brokers that can deduplicate on the envelope id
do so as well (NATS JetStream's message id, SQS FIFO's deduplication id).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ledgerd.platform.messaging.envelope import Envelope


class PublishError(Exception):
    """The broker did not accept every envelope; the relay will try them again."""


class BrokerUnavailableError(PublishError):
    """The broker could not be reached or did not answer in time.

    Retried for as long as it takes and never held against the events: an outage must not
    dead-letter anything.
    """


class EventRejectedError(PublishError):
    """The broker refused one envelope itself (too large, invalid for it).

    Counted against that event, which the relay moves to the dead-letter table after enough
    attempts.
    """

    def __init__(self, message: str, *, event_id: str) -> None:
        super().__init__(message)
        self.event_id = event_id


class Publisher(Protocol):
    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        """Hand ``envelopes`` over in order; return once the broker has accepted all of them.

        Envelopes of one ledger keep their order on the broker. Raises ``PublishError`` if
        any was not accepted: the caller retries the same envelopes, so some may arrive twice.
        """
        ...

    async def aclose(self) -> None: ...


Settle = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message as received: an envelope, or (``envelope`` None) why it is not one.

    ``ack`` once it is handled (or, for a malformed one, rejected for good); ``nack`` to have
    it delivered again later.
    """

    envelope: Envelope | None
    problem: str | None
    ack: Settle
    nack: Settle


class Subscriber(Protocol):
    def deliveries(self) -> AsyncIterator[Delivery]:
        """Messages as they arrive, until ``aclose()``; each must be acked or nacked."""
        ...

    async def aclose(self) -> None: ...
