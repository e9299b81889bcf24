"""The ledger context's error codes: what its rules refuse, in the spelling clients rely on.

The codes every context shares (a malformed request, a lost race, a deadline, an outage) are
the kernel's `ErrorCode`; these belong to the ledger alone. Their gRPC and HTTP statuses are
registered with the transports by the ledger's entrypoints (`ledger.entrypoints.errors`).
"""

from __future__ import annotations

from enum import StrEnum

from ledgerd.kernel.errors import LedgerdError


class LedgerErrorCode(StrEnum):
    """The ledger's codes; their spelling is part of the API."""

    LEDGER_NOT_FOUND = "LEDGER_NOT_FOUND"
    LEDGER_ALREADY_EXISTS = "LEDGER_ALREADY_EXISTS"
    ACCOUNT_NOT_FOUND = "ACCOUNT_NOT_FOUND"
    ACCOUNT_ALREADY_EXISTS = "ACCOUNT_ALREADY_EXISTS"
    ACCOUNT_FROZEN = "ACCOUNT_FROZEN"
    ACCOUNT_CLOSED = "ACCOUNT_CLOSED"
    ACCOUNT_HAS_PENDING = "ACCOUNT_HAS_PENDING"
    ASSET_MISMATCH = "ASSET_MISMATCH"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    CREDIT_LIMIT_EXCEEDED = "CREDIT_LIMIT_EXCEEDED"
    BALANCE_OVERFLOW = "BALANCE_OVERFLOW"
    IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"
    TRANSFER_NOT_FOUND = "TRANSFER_NOT_FOUND"
    TRANSFER_NOT_PENDING = "TRANSFER_NOT_PENDING"
    PENDING_EXPIRED = "PENDING_EXPIRED"
    CAPTURE_EXCEEDS_PENDING = "CAPTURE_EXCEEDS_PENDING"
    TRANSFER_NOT_REVERSIBLE = "TRANSFER_NOT_REVERSIBLE"
    TRANSFER_ALREADY_REVERSED = "TRANSFER_ALREADY_REVERSED"
    BATCH_ABORTED = "BATCH_ABORTED"


def ledger_not_found(ledger_id: str) -> LedgerdError:
    """No ledger ``ledger_id``: also the answer about one the caller may not see."""
    return LedgerdError(
        LedgerErrorCode.LEDGER_NOT_FOUND,
        f"ledger {ledger_id} does not exist",
        {"ledger": ledger_id},
    )
