"""ReplayDeadLetters: deliver an endpoint's dead letters again, in order, before what is next.

The dead letters asked for (those from ``from_sequence`` on) go first, lowest sequence first,
each with a fresh set of attempts; then the endpoint carries on with the ledger's events where
it was. A replayed event that fails every attempt again becomes a dead letter again. From the
command line the endpoint is named by its id alone (``ledgerd webhooks replay``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ledgerd.kernel.errors import validation_error
from ledgerd.kernel.ids import check_id_shape
from ledgerd.kernel.unit_of_work import UnitOfWork, retry_on_conflict
from ledgerd.webhooks.application._lookups import check_names, require_webhook
from ledgerd.webhooks.application.ports import DeliveryWakeups
from ledgerd.webhooks.domain.repositories import (
    DeadLetterQueue,
    LedgerStreams,
    WebhookRepository,
)

# The largest sequence a stream reaches (a 64-bit column).
MAX_SEQUENCE = 2**63 - 1


@dataclass(frozen=True, slots=True)
class ReplayDeadLetters:
    # None: the endpoint's own ledger, whichever it is (the command line, not the API).
    ledger: str | None
    webhook: str
    from_sequence: int = 0


class ReplayDeadLettersHandler:
    def __init__(
        self,
        uow: UnitOfWork,
        webhooks: WebhookRepository,
        streams: LedgerStreams,
        dead_letters: DeadLetterQueue,
        wakeups: DeliveryWakeups,
    ) -> None:
        self._uow, self._webhooks, self._streams = uow, webhooks, streams
        self._dead_letters, self._wakeups = dead_letters, wakeups

    async def __call__(self, command: ReplayDeadLetters) -> int:
        """How many dead letters will be delivered again."""
        if command.ledger is None:
            check_id_shape(command.webhook, "webhook")
        else:
            check_names(command.ledger, command.webhook)
        if not 0 <= command.from_sequence <= MAX_SEQUENCE:
            raise validation_error("from_sequence", f"must be between 0 and {MAX_SEQUENCE}")
        replayed = await retry_on_conflict(lambda: self._replay(command))
        if replayed:
            self._wakeups.wake()
        return replayed

    async def _replay(self, command: ReplayDeadLetters) -> int:
        async with self._uow.begin() as transaction:
            endpoint = await require_webhook(
                self._webhooks, self._streams, command.ledger, command.webhook
            )
            replayed = await self._dead_letters.request_replay(
                endpoint.id, from_sequence=command.from_sequence
            )
            await transaction.commit()
        return replayed
