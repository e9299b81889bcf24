"""The posting engine: applies a batch of requests to the accounts and holds it was given.

The application layer loads (and locks) everything a batch can touch into a ``PostingSnapshot``;
the session then decides every request in order, purely in memory, and hands back what to write.
A request that fails leaves the session exactly as it was, so its neighbours are unaffected.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import assert_never

from ledgerd.kernel.errors import LedgerdError, validation_error
from ledgerd.kernel.metadata import check_metadata
from ledgerd.ledger.domain.chain import chained_hash
from ledgerd.ledger.domain.errors import LedgerErrorCode
from ledgerd.ledger.domain.events import TransferEvent, transfer_event
from ledgerd.ledger.domain.model import (
    Account,
    Entry,
    Layer,
    LedgerHead,
    Leg,
    Transfer,
    TransferKind,
    TransferStatus,
)
from ledgerd.ledger.domain.movements import Movement, leg_movements
from ledgerd.ledger.domain.requests import (
    CaptureRequest,
    ExpiryRequest,
    PostingRequest,
    ReversalRequest,
    TransferRequest,
    VoidRequest,
)

# Kinds whose movements can push an account past its limits; releases never can.
_CONSTRAINED_KINDS = frozenset(
    {TransferKind.POSTING, TransferKind.PENDING, TransferKind.CAPTURE, TransferKind.REVERSAL}
)


@dataclass(frozen=True, slots=True)
class Posted:
    """A request's success: the transfer it created, or the original one for a replay."""

    transfer: Transfer
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class PostingSnapshot:
    """The slice of a ledger one batch may touch, as loaded under lock."""

    head: LedgerHead
    accounts: Mapping[str, Account]
    transfers: Mapping[str, Transfer] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Plan:
    kind: TransferKind
    status: TransferStatus
    legs: tuple[Leg, ...]
    moves: tuple[Movement, ...]
    expires_at: datetime | None = None
    target: Transfer | None = None
    target_status: TransferStatus | None = None


@dataclass(frozen=True, slots=True)
class Savepoint:
    # Accounts and transfers are immutable values, so copies of the maps are full snapshots.
    head: LedgerHead
    accounts: Mapping[str, Account]
    transfers: Mapping[str, Transfer]
    ids_by_key: Mapping[str, str]
    new_count: int
    entry_count: int
    event_count: int


class PostingSession:
    """Decides a batch of posting requests against one ledger's snapshot."""

    def __init__(
        self, snapshot: PostingSnapshot, *, now: datetime, new_id: Callable[[], str]
    ) -> None:
        self._snapshot = snapshot
        self._now = now
        self._new_id = new_id
        self._head = snapshot.head
        self._accounts = dict(snapshot.accounts)
        self._transfers = dict(snapshot.transfers)
        self._ids_by_key = {t.idempotency_key: t.id for t in snapshot.transfers.values()}
        self._new_ids: list[str] = []
        self._entries: list[Entry] = []
        self._events: list[TransferEvent] = []

    # -- what the application writes afterwards -------------------------------------------

    @property
    def head(self) -> LedgerHead:
        return self._head

    @property
    def new_transfers(self) -> list[Transfer]:
        return [self._transfers[transfer_id] for transfer_id in self._new_ids]

    @property
    def entries(self) -> list[Entry]:
        return list(self._entries)

    @property
    def events(self) -> list[TransferEvent]:
        """One event per new transfer, in chain order, each as the transfer was created."""
        return list(self._events)

    def changed_accounts(self) -> list[tuple[Account, int]]:
        """Each account whose state changed, with the version it was loaded at."""
        return [
            (account, self._snapshot.accounts[account_id].version)
            for account_id, account in sorted(self._accounts.items())
            if account is not self._snapshot.accounts[account_id]
        ]

    def status_changes(self) -> list[tuple[Transfer, TransferStatus]]:
        """Pre-existing transfers whose status changed: the loaded record and the new status."""
        return [
            (before, self._transfers[transfer_id].status)
            for transfer_id, before in self._snapshot.transfers.items()
            if self._transfers[transfer_id].status is not before.status
        ]

    def savepoint(self) -> Savepoint:
        """The session's state now, to go back to if a group of requests must not stick."""
        return Savepoint(
            head=self._head,
            accounts=dict(self._accounts),
            transfers=dict(self._transfers),
            ids_by_key=dict(self._ids_by_key),
            new_count=len(self._new_ids),
            entry_count=len(self._entries),
            event_count=len(self._events),
        )

    def rollback_to(self, savepoint: Savepoint) -> None:
        """Forget every request decided since ``savepoint`` (an atomic batch that failed)."""
        self._head = savepoint.head
        self._accounts = dict(savepoint.accounts)
        self._transfers = dict(savepoint.transfers)
        self._ids_by_key = dict(savepoint.ids_by_key)
        del self._new_ids[savepoint.new_count :]
        del self._entries[savepoint.entry_count :]
        del self._events[savepoint.event_count :]

    # -- deciding requests ----------------------------------------------------------------

    def post(self, request: PostingRequest) -> Posted:
        """Apply one request, or raise its ``LedgerdError`` leaving the session unchanged."""
        request.check()
        replay = self._replay(request)
        if replay is not None:
            return replay
        match request:
            case TransferRequest():
                plan = self._plan_transfer(request)
            case CaptureRequest():
                plan = self._plan_capture(request)
            case VoidRequest() | ExpiryRequest():
                plan = self._plan_release(request)
            case ReversalRequest():
                plan = self._plan_reversal(request)
            case _:
                assert_never(request)
        return Posted(self._apply(request, plan))

    def _replay(self, request: PostingRequest) -> Posted | None:
        transfer_id = self._ids_by_key.get(request.key)
        if transfer_id is None:
            return None
        original = self._transfers[transfer_id]
        if original.request_hash != request.fingerprint():
            raise LedgerdError(
                LedgerErrorCode.IDEMPOTENCY_CONFLICT,
                f"idempotency key {request.key!r} was already used with a different request",
                {"idempotency_key": request.key, "transfer_id": original.id},
            )
        return Posted(original, replayed=True)

    def _account(self, account_id: str) -> Account:
        account = self._accounts.get(account_id)
        if account is None:
            raise LedgerdError(
                LedgerErrorCode.ACCOUNT_NOT_FOUND,
                f"account {account_id} does not exist",
                {"account": account_id},
            )
        return account

    def _transfer(self, transfer_id: str) -> Transfer:
        transfer = self._transfers.get(transfer_id)
        if transfer is None:
            raise LedgerdError(
                LedgerErrorCode.TRANSFER_NOT_FOUND,
                f"transfer {transfer_id} does not exist",
                {"transfer": transfer_id},
            )
        return transfer

    def _plan_transfer(self, request: TransferRequest) -> _Plan:
        legs: list[Leg] = []
        for index, leg in enumerate(request.legs):
            debit, credit = self._account(leg.debit_account), self._account(leg.credit_account)
            for asset in (credit.asset, leg.asset):
                if asset is not None and asset != debit.asset:
                    raise LedgerdError(
                        LedgerErrorCode.ASSET_MISMATCH,
                        f"legs[{index}]: {debit.id} holds {debit.asset}, not {asset}",
                        {"leg": str(index)},
                    )
            debit.ensure_movable()
            credit.ensure_movable()
            legs.append(Leg(debit.id, credit.id, leg.amount, debit.asset))
        layer = Layer.PENDING if request.pending else Layer.POSTED
        timeout = request.timeout
        return _Plan(
            kind=TransferKind.PENDING if request.pending else TransferKind.POSTING,
            status=TransferStatus.PENDING if request.pending else TransferStatus.POSTED,
            legs=tuple(legs),
            moves=tuple(leg_movements(tuple(legs), layer)),
            expires_at=None if timeout is None else self._now + timeout,
        )

    def _pending_target(self, pending_id: str) -> Transfer:
        target = self._transfer(pending_id)
        expired = LedgerdError(
            LedgerErrorCode.PENDING_EXPIRED,
            f"pending transfer {pending_id} has expired",
            {"transfer": pending_id},
        )
        if target.kind is not TransferKind.PENDING or target.status is not TransferStatus.PENDING:
            if target.status is TransferStatus.EXPIRED:
                raise expired
            raise LedgerdError(
                LedgerErrorCode.TRANSFER_NOT_PENDING,
                f"transfer {pending_id} is {target.status}, not pending",
                {"transfer": pending_id, "status": target.status.value},
            )
        if target.expires_at is not None and self._now >= target.expires_at:
            raise expired
        return target

    def _plan_capture(self, request: CaptureRequest) -> _Plan:
        target = self._pending_target(request.pending_id)
        if request.amount is None:
            captured = target.legs
        elif len(target.legs) != 1:
            raise validation_error("amount", "a partial capture needs a single-leg hold")
        elif request.amount > target.legs[0].amount:
            raise LedgerdError(
                LedgerErrorCode.CAPTURE_EXCEEDS_PENDING,
                f"capture of {request.amount} exceeds the {target.legs[0].amount} held",
                {"transfer": target.id},
            )
        else:
            captured = (dataclasses.replace(target.legs[0], amount=request.amount),)
        for leg in captured:
            self._account(leg.debit_account).ensure_movable()
            self._account(leg.credit_account).ensure_movable()
        return _Plan(
            kind=TransferKind.CAPTURE,
            status=TransferStatus.POSTED,
            legs=captured,
            moves=(
                *leg_movements(target.legs, Layer.PENDING, -1),
                *leg_movements(captured, Layer.POSTED),
            ),
            target=target,
            target_status=TransferStatus.CAPTURED,
        )

    def _plan_release(self, request: VoidRequest | ExpiryRequest) -> _Plan:
        if isinstance(request, VoidRequest):
            target = self._pending_target(request.pending_id)
            kind, target_status = TransferKind.VOID, TransferStatus.VOIDED
        else:
            target = self._transfer(request.pending_id)
            if target.status is not TransferStatus.PENDING:
                raise LedgerdError(
                    LedgerErrorCode.TRANSFER_NOT_PENDING,
                    f"transfer {target.id} is {target.status}, not pending",
                    {"transfer": target.id, "status": target.status.value},
                )
            if target.expires_at is None or self._now < target.expires_at:
                raise validation_error("pending_id", f"transfer {target.id} has not expired")
            kind, target_status = TransferKind.EXPIRY, TransferStatus.EXPIRED
        return _Plan(
            kind=kind,
            status=TransferStatus.POSTED,
            legs=target.legs,
            moves=tuple(leg_movements(target.legs, Layer.PENDING, -1)),
            target=target,
            target_status=target_status,
        )

    def _plan_reversal(self, request: ReversalRequest) -> _Plan:
        target = self._transfer(request.transfer_id)
        if target.status is TransferStatus.REVERSED:
            raise LedgerdError(
                LedgerErrorCode.TRANSFER_ALREADY_REVERSED,
                f"transfer {target.id} was already reversed",
                {"transfer": target.id},
            )
        reversible = {TransferKind.POSTING, TransferKind.CAPTURE, TransferKind.REVERSAL}
        if target.kind not in reversible or target.status is not TransferStatus.POSTED:
            raise LedgerdError(
                LedgerErrorCode.TRANSFER_NOT_REVERSIBLE,
                f"a {target.kind} transfer cannot be reversed",
                {"transfer": target.id, "kind": target.kind.value},
            )
        legs = tuple(
            Leg(leg.credit_account, leg.debit_account, leg.amount, leg.asset) for leg in target.legs
        )
        for leg in legs:
            self._account(leg.debit_account).ensure_movable()
            self._account(leg.credit_account).ensure_movable()
        return _Plan(
            kind=TransferKind.REVERSAL,
            status=TransferStatus.POSTED,
            legs=legs,
            moves=tuple(leg_movements(legs, Layer.POSTED)),
            target=target,
            target_status=TransferStatus.REVERSED,
        )

    def _apply(self, request: PostingRequest, plan: _Plan) -> Transfer:
        sequence = self._head.sequence + 1
        unhashed = Transfer(
            ledger_id=self._head.ledger_id,
            id=self._new_id(),
            sequence=sequence,
            kind=plan.kind,
            status=plan.status,
            idempotency_key=request.key,
            request_hash=request.fingerprint(),
            legs=plan.legs,
            metadata=check_metadata(request.metadata),
            created_at=self._now,
            expires_at=plan.expires_at,
            target_id=None if plan.target is None else plan.target.id,
            prev_hash=self._head.hash,
        )
        transfer = unhashed.hashed(chained_hash(unhashed, self._head.hash))
        touched: dict[str, Account] = {}
        entries: list[Entry] = []
        for move in plan.moves:
            account = touched.get(move.account_id) or self._account(move.account_id)
            balances = account.balances.moved(move.side, move.layer, move.amount)
            account = account.moved_to(balances)
            touched[account.id] = account
            entries.append(
                Entry(
                    ledger_id=transfer.ledger_id,
                    account_id=account.id,
                    account_sequence=account.entry_count,
                    transfer_id=transfer.id,
                    transfer_sequence=sequence,
                    leg_index=move.leg_index,
                    side=move.side,
                    layer=move.layer,
                    amount=move.amount,
                    balances_after=balances,
                    created_at=self._now,
                )
            )
        for account in touched.values():
            overflow = account.available_overflow(before=self._account(account.id))
            if overflow is not None:
                raise overflow
        if plan.kind in _CONSTRAINED_KINDS:
            for account in touched.values():
                violation = account.constraint_violation()
                if violation is not None:
                    raise violation
        # Everything is decided: only now does the session change.
        self._accounts.update(touched)
        self._entries.extend(entries)
        self._head = LedgerHead(transfer.ledger_id, sequence, transfer.hash, transfer.created_at)
        self._transfers[transfer.id] = transfer
        self._ids_by_key[transfer.idempotency_key] = transfer.id
        self._new_ids.append(transfer.id)
        self._events.append(
            transfer_event(
                transfer,
                tuple(entries),
                {account.id: account.normal_side for account in touched.values()},
            )
        )
        if plan.target is not None and plan.target_status is not None:
            current = self._transfers[plan.target.id]
            self._transfers[plan.target.id] = dataclasses.replace(
                current, status=plan.target_status
            )
        return transfer
