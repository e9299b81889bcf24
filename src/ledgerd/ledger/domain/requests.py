"""What a client may ask the posting engine for, with the checks that need no state.

Each request knows its idempotency key and a fingerprint of its body: the same key with the
same fingerprint is a replay, with another fingerprint a conflict.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from ledgerd.kernel.errors import validation_error
from ledgerd.kernel.ids import DOT_SEGMENTS, ID_PATTERN, check_id
from ledgerd.kernel.metadata import Metadata, check_metadata
from ledgerd.kernel.money import Asset, check_amount
from ledgerd.kernel.rules import TextRule

MAX_LEGS = 64
# Ten years: long enough for any hold, short enough that the expiry instant is representable.
MAX_PENDING_TIMEOUT_SECONDS = 10 * 366 * 24 * 3600


def fingerprint(body: Mapping[str, object]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class LegRequest:
    debit_account: str
    credit_account: str
    amount: int
    asset: Asset | None = None

    def check(self, index: int) -> None:
        check_id(self.debit_account, f"legs[{index}].debit_account")
        check_id(self.credit_account, f"legs[{index}].credit_account")
        check_amount(self.amount, f"legs[{index}].amount")
        if self.debit_account == self.credit_account:
            raise validation_error(f"legs[{index}]", "debit_account and credit_account must differ")

    def body(self) -> dict[str, object]:
        return {
            "debit_account": self.debit_account,
            "credit_account": self.credit_account,
            "amount": self.amount,
            "asset": None if self.asset is None else str(self.asset),
        }


@dataclass(frozen=True, slots=True)
class TransferRequest:
    """Post value along ``legs`` now, or hold it when ``pending`` is true.

    ``timeout_seconds`` (pending only) voids the hold automatically once it passes; 0 = never.
    """

    idempotency_key: str
    legs: tuple[LegRequest, ...]
    pending: bool = False
    timeout_seconds: int = 0
    metadata: Metadata = field(default_factory=dict)

    def check(self) -> None:
        check_id(self.idempotency_key, "idempotency_key")
        if not 1 <= len(self.legs) <= MAX_LEGS:
            raise validation_error("legs", f"a transfer needs 1 to {MAX_LEGS} legs")
        for index, leg in enumerate(self.legs):
            leg.check(index)
        if isinstance(self.timeout_seconds, bool) or not isinstance(self.timeout_seconds, int):
            raise validation_error("pending.timeout_seconds", "must be an integer")
        if not 0 <= self.timeout_seconds <= MAX_PENDING_TIMEOUT_SECONDS:
            raise validation_error(
                "pending.timeout_seconds", f"must be between 0 and {MAX_PENDING_TIMEOUT_SECONDS}"
            )
        if self.timeout_seconds and not self.pending:
            raise validation_error("pending.timeout_seconds", "applies only to pending transfers")
        check_metadata(self.metadata)

    @property
    def key(self) -> str:
        return self.idempotency_key

    @property
    def timeout(self) -> timedelta | None:
        return timedelta(seconds=self.timeout_seconds) if self.timeout_seconds else None

    def fingerprint(self) -> str:
        return fingerprint(
            {
                "op": "transfer",
                "legs": [leg.body() for leg in self.legs],
                "pending": self.pending,
                "timeout_seconds": self.timeout_seconds,
                "metadata": dict(self.metadata),
            }
        )


_DERIVED_KEY_OPERATIONS = frozenset({"capture", "void", "expire", "reverse"})
# What check_key accepts, as a rule the API documents are made of.
KEY_RULE = TextRule(
    pattern=f"^(?:(?:{'|'.join(sorted(_DERIVED_KEY_OPERATIONS))})/)?{ID_PATTERN.pattern[1:-1]}$",
    excluded=DOT_SEGMENTS
    | {f"{operation}/{dots}" for operation in _DERIVED_KEY_OPERATIONS for dots in DOT_SEGMENTS},
)


def _derived_key(operation: str, target_id: str, explicit: str | None) -> str:
    # "/" cannot occur in a client key, so a derived key never collides with one.
    return explicit if explicit is not None else f"{operation}/{target_id}"


def check_key(key: str, field: str = "idempotency_key") -> None:
    """A key a transfer may carry: a client's, or one derived for it (``capture/<hold id>``)."""
    operation, slash, target_id = key.partition("/")
    if slash and operation in _DERIVED_KEY_OPERATIONS:
        check_id(target_id, field)
    else:
        check_id(key, field)


@dataclass(frozen=True, slots=True)
class CaptureRequest:
    """Settle a hold: all of it, or ``amount`` of a single-leg hold (the rest is released)."""

    pending_id: str
    amount: int | None = None
    idempotency_key: str | None = None
    metadata: Metadata = field(default_factory=dict)

    def check(self) -> None:
        check_id(self.pending_id, "pending_id")
        if self.amount is not None:
            check_amount(self.amount)
        if self.idempotency_key is not None:
            check_id(self.idempotency_key, "idempotency_key")
        check_metadata(self.metadata)

    @property
    def key(self) -> str:
        return _derived_key("capture", self.pending_id, self.idempotency_key)

    def fingerprint(self) -> str:
        return fingerprint(
            {
                "op": "capture",
                "pending_id": self.pending_id,
                "amount": self.amount,
                "metadata": dict(self.metadata),
            }
        )


@dataclass(frozen=True, slots=True)
class VoidRequest:
    """Release a hold without moving any value."""

    pending_id: str
    idempotency_key: str | None = None
    metadata: Metadata = field(default_factory=dict)

    def check(self) -> None:
        check_id(self.pending_id, "pending_id")
        if self.idempotency_key is not None:
            check_id(self.idempotency_key, "idempotency_key")
        check_metadata(self.metadata)

    @property
    def key(self) -> str:
        return _derived_key("void", self.pending_id, self.idempotency_key)

    def fingerprint(self) -> str:
        return fingerprint(
            {"op": "void", "pending_id": self.pending_id, "metadata": dict(self.metadata)}
        )


@dataclass(frozen=True, slots=True)
class ExpiryRequest:
    """Issued by the expiry sweep, never by clients: void a hold whose timeout has passed."""

    pending_id: str
    metadata: Metadata = field(default_factory=dict)

    def check(self) -> None:
        check_id(self.pending_id, "pending_id")

    @property
    def key(self) -> str:
        return _derived_key("expire", self.pending_id, None)

    def fingerprint(self) -> str:
        return fingerprint({"op": "expire", "pending_id": self.pending_id})


@dataclass(frozen=True, slots=True)
class ReversalRequest:
    """Undo a posted transfer with a new transfer along the same legs, reversed."""

    transfer_id: str
    idempotency_key: str | None = None
    metadata: Metadata = field(default_factory=dict)

    def check(self) -> None:
        check_id(self.transfer_id, "transfer_id")
        if self.idempotency_key is not None:
            check_id(self.idempotency_key, "idempotency_key")
        check_metadata(self.metadata)

    @property
    def key(self) -> str:
        return _derived_key("reverse", self.transfer_id, self.idempotency_key)

    def fingerprint(self) -> str:
        return fingerprint(
            {"op": "reverse", "transfer_id": self.transfer_id, "metadata": dict(self.metadata)}
        )


PostingRequest = TransferRequest | CaptureRequest | VoidRequest | ExpiryRequest | ReversalRequest


def target_of(request: PostingRequest) -> str | None:
    """The existing transfer a request acts upon, if any."""
    match request:
        case CaptureRequest() | VoidRequest() | ExpiryRequest():
            return request.pending_id
        case ReversalRequest():
            return request.transfer_id
        case TransferRequest():
            return None
