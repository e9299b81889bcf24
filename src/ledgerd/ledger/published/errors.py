"""The ledger's refusals that another context gives in the ledger's name.

A context whose API names a ledger (webhooks) answers an unknown one, or one its caller may not
see, exactly as the ledger does: one code for one fact, whichever service was called.
"""

from __future__ import annotations

from ledgerd.ledger.domain.errors import ledger_not_found

__all__ = ["ledger_not_found"]
