"""What each LedgerService RPC requires of its caller: one scope and the ledger it acts on.

The scopes are those of the identity context (``ledgerd.identity.domain.scopes``; the ledger
may not import it, so they are written as strings here and a test checks each is one of
identity's). By kind of action:

- reads, the statement export included: ``ledger.read``;
- opening accounts and changing their metadata: ``ledger.write``;
- moving money (posting, capturing, voiding, reversing): ``transfers.write``;
- creating ledgers and freezing, unfreezing or closing accounts: ``ledgers.admin``.

Every RPC but CreateLedger and ListLedgers acts on the one ledger its ``ledger`` field names,
which the caller must be granted. None is public. docs/security.md shows this table.
"""

from __future__ import annotations

from typing import Final

from ledgerd.platform.api.access import MethodAccess, ServiceAccess

LEDGER_READ: Final = "ledger.read"
LEDGER_WRITE: Final = "ledger.write"
TRANSFERS_WRITE: Final = "transfers.write"
LEDGERS_ADMIN: Final = "ledgers.admin"

# The request field naming the ledger a call acts on.
_LEDGER: Final = "ledger"


def _on_ledger(scope: str) -> MethodAccess:
    return MethodAccess(scope=scope, ledger_field=_LEDGER)


LEDGER_API_ACCESS: Final[ServiceAccess] = {
    # Neither names one ledger: a ledger created is granted to its creator, and ListLedgers is
    # to list only the ledgers granted to the caller.
    "CreateLedger": MethodAccess(scope=LEDGERS_ADMIN),
    "ListLedgers": MethodAccess(scope=LEDGER_READ),
    "GetLedger": _on_ledger(LEDGER_READ),
    "CreateAccount": _on_ledger(LEDGER_WRITE),
    "GetAccount": _on_ledger(LEDGER_READ),
    "ListAccounts": _on_ledger(LEDGER_READ),
    "UpdateAccountMetadata": _on_ledger(LEDGER_WRITE),
    "FreezeAccount": _on_ledger(LEDGERS_ADMIN),
    "UnfreezeAccount": _on_ledger(LEDGERS_ADMIN),
    "CloseAccount": _on_ledger(LEDGERS_ADMIN),
    "PostTransfer": _on_ledger(TRANSFERS_WRITE),
    "PostTransfers": _on_ledger(TRANSFERS_WRITE),
    "GetTransfer": _on_ledger(LEDGER_READ),
    "GetTransferByKey": _on_ledger(LEDGER_READ),
    "ListTransfers": _on_ledger(LEDGER_READ),
    "CapturePending": _on_ledger(TRANSFERS_WRITE),
    "VoidPending": _on_ledger(TRANSFERS_WRITE),
    "ReverseTransfer": _on_ledger(TRANSFERS_WRITE),
    "GetBalance": _on_ledger(LEDGER_READ),
    "BatchGetBalances": _on_ledger(LEDGER_READ),
    "ListEntries": _on_ledger(LEDGER_READ),
    "ExportStatement": _on_ledger(LEDGER_READ),
}
