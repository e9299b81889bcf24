"""The ledger's read-side use cases, one per module, each on the read ports it needs.

Each query opens a read-only unit of work and returns domain values. `LedgerQueries` gathers
them for the callers that use several (the servicer, the CLI); the composition root
builds each query and the bundle.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledgerd.ledger.application.queries.export_entries import ExportEntriesQuery
from ledgerd.ledger.application.queries.get_account import GetAccountQuery
from ledgerd.ledger.application.queries.get_balance import GetBalanceQuery
from ledgerd.ledger.application.queries.get_balances import GetBalancesQuery
from ledgerd.ledger.application.queries.get_ledger import GetLedgerQuery
from ledgerd.ledger.application.queries.get_transfer import GetTransferQuery
from ledgerd.ledger.application.queries.get_transfer_by_key import GetTransferByKeyQuery
from ledgerd.ledger.application.queries.list_accounts import ListAccountsQuery
from ledgerd.ledger.application.queries.list_entries import ListEntriesQuery
from ledgerd.ledger.application.queries.list_ledgers import ListLedgersQuery
from ledgerd.ledger.application.queries.list_transfers import ListTransfersQuery


@dataclass(frozen=True, slots=True)
class LedgerQueries:
    """Every read of the ledger context, called as ``queries.get_account(ledger, account)``."""

    get_ledger: GetLedgerQuery
    list_ledgers: ListLedgersQuery
    get_account: GetAccountQuery
    list_accounts: ListAccountsQuery
    get_balance: GetBalanceQuery
    get_balances: GetBalancesQuery
    get_transfer: GetTransferQuery
    get_transfer_by_key: GetTransferByKeyQuery
    list_transfers: ListTransfersQuery
    list_entries: ListEntriesQuery
    export_entries: ExportEntriesQuery


# Every query class, for the composition root to provide beside the bundle.
QUERY_TYPES = (
    GetLedgerQuery,
    ListLedgersQuery,
    GetAccountQuery,
    ListAccountsQuery,
    GetBalanceQuery,
    GetBalancesQuery,
    GetTransferQuery,
    GetTransferByKeyQuery,
    ListTransfersQuery,
    ListEntriesQuery,
    ExportEntriesQuery,
)

__all__ = [
    "QUERY_TYPES",
    "ExportEntriesQuery",
    "GetAccountQuery",
    "GetBalanceQuery",
    "GetBalancesQuery",
    "GetLedgerQuery",
    "GetTransferByKeyQuery",
    "GetTransferQuery",
    "LedgerQueries",
    "ListAccountsQuery",
    "ListEntriesQuery",
    "ListLedgersQuery",
    "ListTransfersQuery",
]
