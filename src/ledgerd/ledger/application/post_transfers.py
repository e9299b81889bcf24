"""Post transfers (and captures, voids, reversals) in one unit of work.

The batch is the primitive: one transfer is a batch of one, and one unit of work may carry
several callers' batches (a group, gathered by the batcher). Each request gets its own result;
with ``atomic`` a single failure fails its whole command and nothing of it is written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from ledgerd.kernel.clock import Clock
from ledgerd.kernel.errors import LedgerdError, validation_error
from ledgerd.kernel.ids import IdGenerator, check_id
from ledgerd.kernel.result import Err, Ok, Result
from ledgerd.kernel.unit_of_work import UnitOfWork, retry_on_conflict
from ledgerd.ledger.application._lookups import ledger_not_found
from ledgerd.ledger.domain.errors import LedgerErrorCode
from ledgerd.ledger.domain.model import Transfer
from ledgerd.ledger.domain.posting import Posted, PostingSession, PostingSnapshot
from ledgerd.ledger.domain.repositories import (
    AccountRepository,
    EventOutbox,
    JournalRepository,
    LedgerRepository,
    TransferRepository,
)
from ledgerd.ledger.domain.requests import PostingRequest, TransferRequest, target_of

MAX_BATCH = 10_000
# Requests decided between two pauses for other work (see _Pauses): a few ms of CPU.
DECISIONS_BETWEEN_PAUSES = 20

PostingResult = Result[Posted, LedgerdError]


@dataclass(frozen=True, slots=True)
class Malformed:
    """A batch item its entry point could not even decode into a request, with the reason.

    It takes its place in the batch and fails there like any request failing its own checks:
    alone, or with ``atomic`` failing the batch, rather than failing the whole call.
    """

    error: LedgerdError


@dataclass(frozen=True, slots=True)
class PostTransfers:
    ledger_id: str
    requests: Sequence[PostingRequest | Malformed]
    atomic: bool = False


Outcome = list[PostingResult]
"""One command's results, in the order of its requests."""


class Callers(Protocol):
    """Who waits for a group's commands: some may give up until the writes begin, none after."""

    def gone(self) -> Collection[int]:
        """The positions of the commands whose callers have given up, as of now."""
        ...

    def writes_begin(self) -> None:
        """From now on every caller still there is bound to the unit of work's outcome."""
        ...


class TransferPoster(Protocol):
    """What entry points post through: the batcher, or the unbatched poster (posting_calls)."""

    async def __call__(self, command: PostTransfers) -> Outcome: ...

    async def post_one(self, ledger_id: str, request: PostingRequest) -> Posted:
        """Post a single request and return its transfer, or raise its error."""
        ...


class _Alone:
    """A caller who waits for the outcome, whatever happens: the handler called directly."""

    def gone(self) -> Collection[int]:
        return ()

    def writes_begin(self) -> None:
        return None


ALONE: Callers = _Alone()


def check_command(command: PostTransfers) -> None:
    """What is refused before any work: a bad ledger id or batch size fails the whole call."""
    check_id(command.ledger_id, "ledger_id")
    if not 1 <= len(command.requests) <= MAX_BATCH:
        raise validation_error("transfers", f"a batch holds 1 to {MAX_BATCH} transfers")


def _aborted(results: Outcome) -> Outcome:
    aborted = LedgerdError(
        LedgerErrorCode.BATCH_ABORTED,
        "another transfer in this atomic batch failed; nothing was posted",
    )
    return [result if isinstance(result, Err) else Err(aborted) for result in results]


class PostTransfersHandler:
    """Posts commands of one ledger in one unit of work: alone, or a batcher's group of them."""

    def __init__(  # noqa: PLR0913 - one port each, all required
        self,
        *,
        uow: UnitOfWork,
        ledgers: LedgerRepository,
        accounts: AccountRepository,
        transfers: TransferRepository,
        journal: JournalRepository,
        events: EventOutbox,
        clock: Clock,
        new_id: IdGenerator,
    ) -> None:
        self._uow = uow
        self._ledgers = ledgers
        self._accounts = accounts
        self._transfers = transfers
        self._journal = journal
        self._events = events
        self._clock = clock
        self._new_id = new_id

    async def __call__(self, command: PostTransfers) -> Outcome:
        check_command(command)
        (outcome,) = await self.post_group(command.ledger_id, [command])
        if outcome is None:  # only ``callers`` the caller passes can leave a command out
            msg = "a command posted directly was left out"
            raise RuntimeError(msg)
        return outcome

    async def post_one(self, ledger_id: str, request: PostingRequest) -> Posted:
        """Post a single request and return its transfer, or raise its error."""
        return only_result(await self(PostTransfers(ledger_id, [request])))

    async def post_group(
        self,
        ledger_id: str,
        commands: Sequence[PostTransfers],
        *,
        callers: Callers = ALONE,
    ) -> list[Outcome | None]:
        """Post ``commands`` (all of ``ledger_id``, already checked) in one unit of work.

        Each command gets its own results, exactly as if it had been posted alone at that
        point of the chain: an ``atomic`` one all-or-nothing, the others item by item. The
        commands whose callers are ``gone()`` just before the writes are left out (their
        outcome is None) and the others decided again without them, so a caller who gave up
        in time leaves nothing behind; then ``writes_begin()``, and the commit decides.
        """
        return await retry_on_conflict(lambda: self._attempt(ledger_id, commands, callers))

    async def _attempt(
        self, ledger_id: str, commands: Sequence[PostTransfers], callers: Callers
    ) -> list[Outcome | None]:
        async with self._uow.begin() as tx:
            snapshot = await self._load(ledger_id, commands)
            # "now" is read under the ledger's lock, and never before the last transfer's
            # creation time (a clock stepped back), so creation times never go backwards.
            now = snapshot.head.next_creation_time(self._clock.now())
            left_out: set[int] = set()
            while True:
                session = PostingSession(snapshot, now=now, new_id=self._new_id)
                pause = _Pauses()
                outcomes = [
                    None if index in left_out else await _decide(session, command, pause)
                    for index, command in enumerate(commands)
                ]
                gone = set(callers.gone()) - left_out
                if not gone:
                    break
                left_out |= gone
            if session.new_transfers:
                # No await since the last look at who is gone: nobody can leave in between.
                callers.writes_begin()
                await self._write(session, snapshot)
                await tx.commit()
            return outcomes

    async def _write(self, session: PostingSession, snapshot: PostingSnapshot) -> None:
        await self._transfers.add_many(session.new_transfers)
        await self._journal.append(session.entries)
        await self._accounts.update_many(session.changed_accounts())
        await self._transfers.set_statuses(session.status_changes())
        await self._ledgers.save_head(session.head, previous=snapshot.head)
        await self._events.record(session.events)

    async def _load(self, ledger_id: str, commands: Sequence[PostTransfers]) -> PostingSnapshot:
        """Load and lock what the batch may touch: accounts in id order, then the chain head.

        Every posting transaction locks in that same order, so they cannot deadlock. Requests
        that fail their own checks load nothing: bad input never reaches the database.
        """
        valid = [
            request
            for command in commands
            for request in command.requests
            if not isinstance(request, Malformed) and _is_well_formed(request)
        ]
        target_ids = {t for r in valid if (t := target_of(r)) is not None}
        # Legs of existing transfers never change, so this unlocked read is enough to know
        # which accounts a capture, void or reversal will move.
        targets = await self._transfers.get_many(ledger_id, target_ids) if target_ids else {}
        account_ids = {
            account_id
            for transfer in targets.values()
            for leg in transfer.legs
            for account_id in (leg.debit_account, leg.credit_account)
        }
        for request in valid:
            if isinstance(request, TransferRequest):
                for leg in request.legs:
                    account_ids.update((leg.debit_account, leg.credit_account))
        accounts = await self._accounts.get_many(ledger_id, account_ids, for_update=True)
        head = await self._ledgers.get_head(ledger_id, for_update=True)
        if head is None:
            raise ledger_not_found(ledger_id)
        # Under the head lock nobody else posts in this ledger: the statuses and keys read
        # from here on stay true until commit.
        by_id: dict[str, Transfer] = {}
        if target_ids:
            by_id.update(await self._transfers.get_many(ledger_id, target_ids))
        if valid:
            replays = await self._transfers.get_by_keys(ledger_id, {r.key for r in valid})
            by_id.update({transfer.id: transfer for transfer in replays.values()})
        return PostingSnapshot(head=head, accounts=accounts, transfers=by_id)


class _Pauses:
    """Lets the event loop run other work every so many requests of a long decision.

    Deciding is pure computation (a few hundred µs a transfer); a group of a thousand would
    otherwise hold the loop for its whole length, and every other caller with it. Pausing
    changes nothing about the decision: the group holds its locks throughout, and who has
    gone is looked at after the last request, never in the middle.
    """

    def __init__(self) -> None:
        self._decided = 0

    async def after_one(self) -> None:
        self._decided += 1
        if self._decided % DECISIONS_BETWEEN_PAUSES == 0:
            await asyncio.sleep(0)


async def _decide(session: PostingSession, command: PostTransfers, pause: _Pauses) -> Outcome:
    """One command's results; an atomic command that fails leaves the session untouched."""
    savepoint = session.savepoint() if command.atomic else None
    results: Outcome = []
    for request in command.requests:
        if isinstance(request, Malformed):
            results.append(Err(request.error))
            continue
        try:
            results.append(Ok(session.post(request)))
        except LedgerdError as error:
            results.append(Err(error))
        await pause.after_one()
    if savepoint is not None and any(isinstance(result, Err) for result in results):
        session.rollback_to(savepoint)
        return _aborted(results)
    return results


def only_result(outcome: Outcome) -> Posted:
    """The transfer of a one-request command, or its error raised."""
    (result,) = outcome
    if isinstance(result, Err):
        raise result.error
    return result.value


def _is_well_formed(request: PostingRequest) -> bool:
    try:
        request.check()
    except LedgerdError:
        return False
    return True
