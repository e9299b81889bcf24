"""What each StreamService RPC requires: reading the ledger whose events it streams.

A stream shows what the ledger's reads show (transfers, accounts, balances after each entry),
so it needs the same scope, ``ledger.read`` (identity's; written as a string here, checked by
tests/unit/main/test_api_access.py), and the grant of the ledger its ``ledger`` field names.
"""

from __future__ import annotations

from typing import Final

from ledgerd.platform.api.access import MethodAccess, ServiceAccess

LEDGER_READ: Final = "ledger.read"

STREAM_API_ACCESS: Final[ServiceAccess] = {
    "WatchLedger": MethodAccess(scope=LEDGER_READ, ledger_field="ledger"),
    "CreateStreamTicket": MethodAccess(scope=LEDGER_READ, ledger_field="ledger"),
}
