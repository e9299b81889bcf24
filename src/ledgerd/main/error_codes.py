"""Registers every context's error table with the transports' catalogue, once per process.

Imported by the `ledgerd.main` package itself, so whatever runs through the composition root
(the servers, the CLI, `make generate`) answers and documents every code. A new context adds
its table here.
"""

from __future__ import annotations

from ledgerd.ledger.entrypoints.errors import LEDGER_ERRORS
from ledgerd.platform.api.errors import ERROR_CODES

CONTEXT_ERROR_TABLES = (LEDGER_ERRORS,)

for _table in CONTEXT_ERROR_TABLES:
    ERROR_CODES.register(_table)

__all__ = ["CONTEXT_ERROR_TABLES", "ERROR_CODES"]
