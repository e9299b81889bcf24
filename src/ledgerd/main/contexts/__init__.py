"""The bounded contexts this program runs: the one list a new context is added to.

Everything else — the container's providers, the gRPC services and their REST routes, the
background workers of ``serve`` and ``worker``, the command line — is taken from here.
"""

from __future__ import annotations

from ledgerd.main.bounded_context import BoundedContext
from ledgerd.main.contexts.identity import IDENTITY
from ledgerd.main.contexts.ledger import LEDGER
from ledgerd.main.contexts.streaming import STREAMING

ENABLED_CONTEXTS: tuple[BoundedContext, ...] = (LEDGER, IDENTITY, STREAMING)
