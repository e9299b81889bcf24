"""The ledger's refusals that another context gives in the ledger's name.

A context whose API names a ledger (webhooks) answers an unknown one, or one its caller may not
see, exactly as the ledger does: one code for one fact, whichever service was called. So too
an idempotency key reused with another request: a client reads one code for it, whichever
creation it retried.
"""

from __future__ import annotations

from ledgerd.kernel.errors import LedgerdError
from ledgerd.ledger.domain.errors import LedgerErrorCode, ledger_not_found

__all__ = ["idempotency_conflict", "ledger_not_found"]


def idempotency_conflict(key: str, *, original_field: str, original_id: str) -> LedgerdError:
    """``key`` was used before with another request; ``original_field`` names what it made.

    The transfers' own conflict says the same with ``transfer_id``; another context names its
    own resource (``webhook_id``).
    """
    return LedgerdError(
        LedgerErrorCode.IDEMPOTENCY_CONFLICT,
        f"idempotency key {key!r} was already used with a different request",
        {"idempotency_key": key, original_field: original_id},
    )
