"""The ledger's aggregates and value objects. Pure Python: no I/O, no frameworks."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from ledgerd.kernel.errors import LedgerdError, validation_error
from ledgerd.kernel.metadata import (
    EMPTY_METADATA,
    MAX_METADATA_ENTRIES,
    Metadata,
    check_metadata,
)
from ledgerd.kernel.money import MAX_AMOUNT, Asset
from ledgerd.ledger.domain.errors import LedgerErrorCode


class AccountStatus(StrEnum):
    OPEN = "open"
    FROZEN = "frozen"
    CLOSED = "closed"


class Side(StrEnum):
    DEBIT = "debit"
    CREDIT = "credit"


class Layer(StrEnum):
    """Posted balances are final; pending balances are holds awaiting capture or void."""

    POSTED = "posted"
    PENDING = "pending"


@dataclass(frozen=True, slots=True)
class Ledger:
    """A tenant: its own accounts, transfers and hash chain."""

    id: str
    name: str
    metadata: Metadata
    created_at: datetime


GENESIS_HASH = "0" * 64


@dataclass(frozen=True, slots=True)
class LedgerHead:
    """The tip of a ledger's hash chain: the last transfer's sequence number and hash.

    ``created_at`` is the last transfer's creation time (None before the first): the next
    transfer is never created earlier, so creation times follow the chain even if the
    server's clock steps back, and a time range of transfers is a range of sequences.
    """

    ledger_id: str
    sequence: int = 0
    hash: str = GENESIS_HASH
    created_at: datetime | None = None

    def next_creation_time(self, now: datetime) -> datetime:
        """``now``, or the last transfer's creation time if the clock is behind it."""
        return now if self.created_at is None else max(now, self.created_at)


@dataclass(frozen=True, slots=True)
class AccountFlags:
    """Balance constraints. ``overdraft_limit`` lets the constrained side go that far over."""

    debits_must_not_exceed_credits: bool = False
    credits_must_not_exceed_debits: bool = False
    overdraft_limit: int = 0

    def __post_init__(self) -> None:
        if self.debits_must_not_exceed_credits and self.credits_must_not_exceed_debits:
            raise validation_error(
                "flags",
                "debits_must_not_exceed_credits and credits_must_not_exceed_debits "
                "are mutually exclusive",
            )
        if isinstance(self.overdraft_limit, bool) or not isinstance(self.overdraft_limit, int):
            raise validation_error("flags.overdraft_limit", "must be an integer")
        if not 0 <= self.overdraft_limit <= MAX_AMOUNT:
            raise validation_error("flags.overdraft_limit", f"must be between 0 and {MAX_AMOUNT}")
        if self.overdraft_limit and not (
            self.debits_must_not_exceed_credits or self.credits_must_not_exceed_debits
        ):
            raise validation_error(
                "flags.overdraft_limit", "needs one of the must_not_exceed flags to limit"
            )


# Position of each balance among Balances' fields, in declaration order.
_BALANCE_INDEX = {
    (Layer.POSTED, Side.DEBIT): 0,
    (Layer.POSTED, Side.CREDIT): 1,
    (Layer.PENDING, Side.DEBIT): 2,
    (Layer.PENDING, Side.CREDIT): 3,
}

# ``available`` is a difference of balances, so it can go negative; it is still reported as a
# signed 64-bit integer like them, and a transfer may not take it outside that range.
MIN_AVAILABLE = -(2**63)
MAX_AVAILABLE = MAX_AMOUNT


@dataclass(frozen=True, slots=True)
class Balances:
    """The four running totals of an account, all in minor units and never negative."""

    posted_debits: int = 0
    posted_credits: int = 0
    pending_debits: int = 0
    pending_credits: int = 0

    def moved(self, side: Side, layer: Layer, amount: int) -> Balances:
        """Return the balances after adding ``amount`` (negative to release a hold)."""
        field = f"{layer.value}_{side.value}s"
        value = getattr(self, field) + amount
        if value > MAX_AMOUNT:
            raise LedgerdError(
                LedgerErrorCode.BALANCE_OVERFLOW,
                f"{field.replace('_', ' ')} would exceed {MAX_AMOUNT}",
                {"balance": field},
            )
        if value < 0:
            # Only releases subtract, and they never release more than was held.
            msg = f"{field} would become negative: a bug in the posting engine"
            raise AssertionError(msg)
        # Built field by field: this runs for every movement, and dataclasses.replace costs
        # several times as much as the constructor.
        values = [
            self.posted_debits,
            self.posted_credits,
            self.pending_debits,
            self.pending_credits,
        ]
        values[_BALANCE_INDEX[layer, side]] = value
        return Balances(*values)

    def available(self, normal_side: Side) -> int:
        """What can still be spent: the posted balance on the normal side minus outgoing holds."""
        if normal_side is Side.CREDIT:
            return self.posted_credits - self.posted_debits - self.pending_debits
        return self.posted_debits - self.posted_credits - self.pending_credits


@dataclass(frozen=True, slots=True)
class Account:
    """An account holds one asset in one ledger. Changes return a new instance."""

    ledger_id: str
    id: str
    asset: Asset
    flags: AccountFlags
    status: AccountStatus
    metadata: Metadata
    created_at: datetime
    balances: Balances = Balances()
    version: int = 0
    entry_count: int = 0

    @property
    def normal_side(self) -> Side:
        """Accounts are credit-normal (like a customer wallet) unless their credits are capped."""
        return Side.DEBIT if self.flags.credits_must_not_exceed_debits else Side.CREDIT

    @property
    def available(self) -> int:
        return self.balances.available(self.normal_side)

    def constraint_violation(self) -> LedgerdError | None:
        """The error a transfer leaving the account in this state must fail with, if any."""
        b, flags = self.balances, self.flags
        all_debits = b.posted_debits + b.pending_debits
        all_credits = b.posted_credits + b.pending_credits
        if (
            flags.debits_must_not_exceed_credits
            and all_debits > b.posted_credits + flags.overdraft_limit
        ):
            return LedgerdError(
                LedgerErrorCode.INSUFFICIENT_FUNDS,
                f"account {self.id} has insufficient funds",
                {"account": self.id},
            )
        if (
            flags.credits_must_not_exceed_debits
            and all_credits > b.posted_debits + flags.overdraft_limit
        ):
            return LedgerdError(
                LedgerErrorCode.CREDIT_LIMIT_EXCEEDED,
                f"account {self.id} would exceed its credit limit",
                {"account": self.id},
            )
        return None

    def available_overflow(self, before: Account) -> LedgerdError | None:
        """BALANCE_OVERFLOW if moving here from ``before`` takes ``available`` out of int64.

        Every balance is capped at 2**63-1, but on an unconstrained account posted plus pending
        debits can reach twice that, so ``available`` could fall below -2**63. A state that
        is out of range but no further out than ``before`` (written before this rule existed)
        is let through: refusing it would also refuse the credits and releases that bring the
        account back.
        """
        now, was = self.available, before.available
        if MIN_AVAILABLE <= now <= MAX_AVAILABLE:
            return None
        if MIN_AVAILABLE > now >= was or MAX_AVAILABLE < now <= was:
            return None
        bound = MIN_AVAILABLE if now < MIN_AVAILABLE else MAX_AVAILABLE
        return LedgerdError(
            LedgerErrorCode.BALANCE_OVERFLOW,
            f"available balance of account {self.id} would pass {bound}",
            {"account": self.id, "balance": "available"},
        )

    def moved_to(self, balances: Balances) -> Account:
        """A copy with ``balances`` and one more journal entry (the posting hot path)."""
        return Account(
            self.ledger_id,
            self.id,
            self.asset,
            self.flags,
            self.status,
            self.metadata,
            self.created_at,
            balances,
            self.version,
            self.entry_count + 1,
        )

    def ensure_movable(self) -> None:
        """Frozen and closed accounts take no new movements (holds may still be released)."""
        if self.status is AccountStatus.FROZEN:
            raise LedgerdError(
                LedgerErrorCode.ACCOUNT_FROZEN, f"account {self.id} is frozen", {"account": self.id}
            )
        if self.status is AccountStatus.CLOSED:
            raise LedgerdError(
                LedgerErrorCode.ACCOUNT_CLOSED, f"account {self.id} is closed", {"account": self.id}
            )

    def with_metadata_changed(self, set_keys: Metadata, remove_keys: Collection[str]) -> Account:
        """A copy with ``set_keys`` set and ``remove_keys`` removed (absent ones are ignored).

        The result is held to the limits metadata is created under (VALIDATION_FAILED). A
        closed account's metadata is final, like the rest of it (ACCOUNT_CLOSED); a frozen
        one's may still change: freezing stops money moving, not the bookkeeping about it.
        """
        if self.status is AccountStatus.CLOSED:
            raise LedgerdError(
                LedgerErrorCode.ACCOUNT_CLOSED, f"account {self.id} is closed", {"account": self.id}
            )
        merged = {key: value for key, value in self.metadata.items() if key not in remove_keys}
        merged.update(set_keys)
        if len(merged) > MAX_METADATA_ENTRIES:
            raise validation_error(
                "metadata",
                f"the account would hold {len(merged)} entries; it may hold at most "
                f"{MAX_METADATA_ENTRIES}",
            )
        return dataclasses.replace(self, metadata=check_metadata(merged))

    def with_status(self, status: AccountStatus) -> Account:
        if self.status is AccountStatus.CLOSED:
            raise LedgerdError(
                LedgerErrorCode.ACCOUNT_CLOSED, f"account {self.id} is closed", {"account": self.id}
            )
        if status is AccountStatus.CLOSED and (
            self.balances.pending_debits or self.balances.pending_credits
        ):
            raise LedgerdError(
                LedgerErrorCode.ACCOUNT_HAS_PENDING,
                f"account {self.id} still has pending holds",
                {"account": self.id},
            )
        return dataclasses.replace(self, status=status)


class TransferKind(StrEnum):
    """Every balance change is a transfer record of one of these kinds."""

    POSTING = "posting"
    PENDING = "pending"
    CAPTURE = "capture"
    VOID = "void"
    EXPIRY = "expiry"
    REVERSAL = "reversal"


class TransferStatus(StrEnum):
    POSTED = "posted"
    PENDING = "pending"
    CAPTURED = "captured"
    VOIDED = "voided"
    EXPIRED = "expired"
    REVERSED = "reversed"


@dataclass(frozen=True, slots=True)
class Leg:
    debit_account: str
    credit_account: str
    amount: int
    asset: Asset


@dataclass(frozen=True, slots=True)
class Transfer:
    """An immutable journal record, except ``status``, which follows a hold's or reversal's fate.

    ``target_id`` names the pending transfer a capture/void/expiry settles, or the transfer a
    reversal undoes. ``hash`` chains the record to its predecessor in the ledger.
    """

    ledger_id: str
    id: str
    sequence: int
    kind: TransferKind
    status: TransferStatus
    idempotency_key: str
    request_hash: str
    legs: tuple[Leg, ...]
    metadata: Metadata
    created_at: datetime
    expires_at: datetime | None = None
    target_id: str | None = None
    prev_hash: str = GENESIS_HASH
    hash: str = GENESIS_HASH

    def hashed(self, value: str) -> Transfer:
        """A copy carrying ``value`` as its hash (cheaper than dataclasses.replace)."""
        return Transfer(
            self.ledger_id,
            self.id,
            self.sequence,
            self.kind,
            self.status,
            self.idempotency_key,
            self.request_hash,
            self.legs,
            self.metadata,
            self.created_at,
            self.expires_at,
            self.target_id,
            self.prev_hash,
            value,
        )


@dataclass(frozen=True, slots=True)
class Entry:
    """One side of one leg on one account, with the account's balances right after it."""

    ledger_id: str
    account_id: str
    account_sequence: int
    transfer_id: str
    transfer_sequence: int
    leg_index: int
    side: Side
    layer: Layer
    amount: int
    balances_after: Balances
    created_at: datetime


def new_account(  # noqa: PLR0913 - the attributes an account is opened with
    ledger_id: str,
    account_id: str,
    asset: Asset,
    created_at: datetime,
    *,
    flags: AccountFlags | None = None,
    metadata: Metadata = EMPTY_METADATA,
) -> Account:
    return Account(
        ledger_id=ledger_id,
        id=account_id,
        asset=asset,
        flags=flags or AccountFlags(),
        status=AccountStatus.OPEN,
        metadata=metadata,
        created_at=created_at,
    )
