"""The webhooks context's error codes; their spelling is part of the API.

A request naming a ledger that does not exist is answered with the ledger's own
``LEDGER_NOT_FOUND`` (``ledgerd.ledger.published.errors``), so that a client reads one code for
it whichever service it called, and a ledger it may not see looks the same as one that is not.
"""

from __future__ import annotations

from enum import StrEnum


class WebhookErrorCode(StrEnum):
    WEBHOOK_NOT_FOUND = "WEBHOOK_NOT_FOUND"
    WEBHOOK_LIMIT_REACHED = "WEBHOOK_LIMIT_REACHED"
