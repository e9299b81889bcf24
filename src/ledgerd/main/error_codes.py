"""Registers every context's error table with the transports' catalogue, once per process.

Imported by the `ledgerd.main` package itself, so whatever runs through the composition root
(the servers, the CLI, `make generate`) answers and documents every code. Each context's
table comes from its description (``BoundedContext.error_codes``).
"""

from __future__ import annotations

from ledgerd.main.contexts import ENABLED_CONTEXTS
from ledgerd.platform.api.errors import ERROR_CODES

CONTEXT_ERROR_TABLES = tuple(context.error_codes for context in ENABLED_CONTEXTS)

for _table in CONTEXT_ERROR_TABLES:
    ERROR_CODES.register(_table)

__all__ = ["CONTEXT_ERROR_TABLES", "ERROR_CODES"]
