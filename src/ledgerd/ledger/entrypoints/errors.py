"""The ledger's error table: each of its codes with its transport statuses and its meaning.

The composition root registers it with the transports' catalogue; docs/api.md's error table
prints it (`make generate`).
"""

from __future__ import annotations

from ledgerd.ledger.domain.errors import LedgerErrorCode
from ledgerd.platform.api.errors import (
    ABORTED,
    ALREADY_EXISTS,
    NOT_FOUND,
    REFUSED,
    ErrorSpec,
    ErrorTable,
)

LEDGER_ERRORS: ErrorTable = {
    LedgerErrorCode.LEDGER_NOT_FOUND: ErrorSpec(NOT_FOUND, "No ledger has that id."),
    LedgerErrorCode.LEDGER_ALREADY_EXISTS: ErrorSpec(
        ALREADY_EXISTS, "A ledger with that id exists already."
    ),
    LedgerErrorCode.ACCOUNT_NOT_FOUND: ErrorSpec(
        NOT_FOUND, "No account of the ledger has that id (also for a leg's account)."
    ),
    LedgerErrorCode.ACCOUNT_ALREADY_EXISTS: ErrorSpec(
        ALREADY_EXISTS, "An account with that id exists already in the ledger."
    ),
    LedgerErrorCode.ACCOUNT_FROZEN: ErrorSpec(
        REFUSED,
        "The account is `FROZEN`: it takes no new postings, holds, captures or reversals.",
    ),
    LedgerErrorCode.ACCOUNT_CLOSED: ErrorSpec(REFUSED, "The account is `CLOSED`."),
    LedgerErrorCode.ACCOUNT_HAS_PENDING: ErrorSpec(
        REFUSED, "The account still has pending holds, so it cannot be closed."
    ),
    LedgerErrorCode.ASSET_MISMATCH: ErrorSpec(
        REFUSED,
        "A leg joins accounts of different assets, or names an asset its accounts do not hold.",
    ),
    LedgerErrorCode.INSUFFICIENT_FUNDS: ErrorSpec(
        REFUSED, "The account's debits would exceed its credits, which its flags forbid."
    ),
    LedgerErrorCode.CREDIT_LIMIT_EXCEEDED: ErrorSpec(
        REFUSED, "The account's credits would exceed its debits, which its flags forbid."
    ),
    LedgerErrorCode.BALANCE_OVERFLOW: ErrorSpec(
        REFUSED, "A balance would exceed the largest amount ledgerd stores."
    ),
    LedgerErrorCode.IDEMPOTENCY_CONFLICT: ErrorSpec(
        ALREADY_EXISTS,
        "The idempotency key was used before with a different request; `details.transfer_id`"
        " is the original (CreateWebhook's: `details.webhook_id`). The same request sent again"
        " is not an error: it answers the original transfer (or webhook) with `replayed` set.",
    ),
    LedgerErrorCode.TRANSFER_NOT_FOUND: ErrorSpec(
        NOT_FOUND, "No transfer of the ledger has that id or idempotency key."
    ),
    LedgerErrorCode.TRANSFER_NOT_PENDING: ErrorSpec(
        REFUSED, "The transfer is not a hold that is still `PENDING`."
    ),
    LedgerErrorCode.PENDING_EXPIRED: ErrorSpec(
        REFUSED, "The hold's timeout has passed (even before the sweep released it)."
    ),
    LedgerErrorCode.CAPTURE_EXCEEDS_PENDING: ErrorSpec(
        REFUSED, "The capture asks for more than the hold holds."
    ),
    LedgerErrorCode.TRANSFER_NOT_REVERSIBLE: ErrorSpec(
        REFUSED, "The transfer's kind cannot be reversed."
    ),
    LedgerErrorCode.TRANSFER_ALREADY_REVERSED: ErrorSpec(
        REFUSED, "The transfer has been reversed already."
    ),
    # Only ever a per-item error of an atomic batch: another item failed.
    LedgerErrorCode.BATCH_ABORTED: ErrorSpec(
        ABORTED,
        "Another transfer of an `atomic` PostTransfers failed, so this one was not posted"
        " either. It comes as a per-item error: the call itself answers gRPC OK (HTTP 200),"
        " the failing items carry their own codes and every other item this one.",
    ),
}
