"""The tamper-evident hash chain over a ledger's transfers.

Each transfer's hash covers its immutable content and its predecessor's hash, so editing,
inserting or dropping any record breaks every hash after it. ``status`` is left out on purpose:
it is the one field that legitimately changes (a hold is captured, a posting reversed), and
those changes are themselves chained as the capture/void/expiry/reversal records.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from ledgerd.ledger.domain.model import Transfer


def _instant(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat(timespec="microseconds")


def chained_hash(transfer: Transfer, prev_hash: str) -> str:
    """The hash ``transfer`` must carry when it follows a record hashed ``prev_hash``."""
    content = {
        "ledger_id": transfer.ledger_id,
        "id": transfer.id,
        "sequence": transfer.sequence,
        "kind": transfer.kind.value,
        "idempotency_key": transfer.idempotency_key,
        "request_hash": transfer.request_hash,
        "legs": [
            [leg.debit_account, leg.credit_account, leg.amount, str(leg.asset)]
            for leg in transfer.legs
        ],
        "metadata": dict(transfer.metadata),
        "created_at": _instant(transfer.created_at),
        "expires_at": _instant(transfer.expires_at),
        "target_id": transfer.target_id,
        "prev_hash": prev_hash,
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
