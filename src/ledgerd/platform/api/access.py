"""What each RPC requires of its caller, as the contexts declare it and the pipeline reads it.

A context lists, for every method of its services, the one scope a call needs and the request
field naming the ledger it acts on (``ledgerd.ledger.entrypoints.grpc.api_access`` for the
ledger). The composition root merges the tables by gRPC method path
(``ledgerd.main.bounded_context.merged_access``); the authentication concern of the request
pipeline will refuse a call whose method has no entry (fail closed) and check the principal's
scopes and ledgers against it. Scopes are plain strings here: platform knows no context, and
the identity context owns their names (a test checks every table names only those).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MethodAccess:
    """What one RPC requires: ``scope``, and the grant of the ledger ``ledger_field`` names.

    ``ledger_field`` is the name of a string field of the request; None for a method that acts
    on no single ledger (creating one, listing those granted). A ``public`` method needs no
    token at all (health, reflection); it then names no scope.
    """

    scope: str | None
    ledger_field: str | None = None
    public: bool = False

    def __post_init__(self) -> None:
        if self.public == (self.scope is not None):
            msg = "a method is either public or needs a scope, never both or neither"
            raise ValueError(msg)


# Access per method of one service, by the RPC's name ("PostTransfer"), as a context declares it.
ServiceAccess = Mapping[str, MethodAccess]
