"""Void every hold whose timeout has passed (the expiry sweep run by the worker)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from ledgerd.kernel.clock import Clock
from ledgerd.kernel.result import Ok
from ledgerd.kernel.unit_of_work import UnitOfWork
from ledgerd.ledger.application.post_transfers import PostTransfers, PostTransfersHandler
from ledgerd.ledger.domain.repositories import TransferRepository
from ledgerd.ledger.domain.requests import ExpiryRequest

DEFAULT_SWEEP_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class ExpirePending:
    limit: int = DEFAULT_SWEEP_LIMIT


class ExpirePendingHandler:
    """Expire each due hold exactly once.

    Each expiry is an ordinary chained transfer with a fixed idempotency key, so a sweep that
    runs twice, or two sweeps running at once, cannot expire a hold twice.
    """

    def __init__(
        self,
        uow: UnitOfWork,
        transfers: TransferRepository,
        post: PostTransfersHandler,
        clock: Clock,
    ) -> None:
        self._uow, self._transfers, self._post, self._clock = uow, transfers, post, clock

    async def __call__(self, command: ExpirePending) -> int:
        """Returns how many holds this sweep expired."""
        due = await self._due(command.limit)
        expired = 0
        for ledger_id, pending_ids in due.items():
            requests = [ExpiryRequest(pending_id) for pending_id in pending_ids]
            results = await self._post(PostTransfers(ledger_id, requests))
            expired += sum(
                1 for result in results if isinstance(result, Ok) and not result.value.replayed
            )
        return expired

    async def _due(self, limit: int) -> dict[str, list[str]]:
        # A plain read: the posting that follows re-checks each hold under the ledger's lock.
        by_ledger: defaultdict[str, list[str]] = defaultdict(list)
        async with self._uow.begin(read_only=True):
            due = await self._transfers.due_for_expiry(self._clock.now(), limit)
        for transfer in due:
            by_ledger[transfer.ledger_id].append(transfer.id)
        return dict(by_ledger)
