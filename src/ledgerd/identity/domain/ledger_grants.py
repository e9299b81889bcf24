"""Granting one more ledger to a client: what "creating a ledger grants it to its creator" needs.

A port of its own rather than a method of ``ClientRepository``: the use case that calls it
(creating a ledger, through the request pipeline) needs nothing else of the client's storage.
"""

from __future__ import annotations

from typing import Protocol


class ClientLedgerGrants(Protocol):
    async def grant_ledger(self, client_id: str, ledger_id: str) -> None:
        """Add ``ledger_id`` to the ledgers ``client_id`` may use; a second grant changes nothing.

        Tokens issued from then on carry it; tokens issued before do not (they hold their grant).
        The client must exist: it is the authenticated caller that created the ledger.
        """
        ...
