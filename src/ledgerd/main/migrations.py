"""The schema's history as this program composes it: the platform's revisions and each context's.

Each owner of tables keeps its Alembic revisions beside them, in a version location of its own:
the platform's (the outbox, its relays, the inbox) are listed here, a context's in its
description (``BoundedContext.migrations``). A new context starts its own branch there
(``down_revision = None``, a ``branch_labels`` of its name), and the upgrade to every head
(``heads``) that ``ledgerd migrate`` and an embedded ``serve`` run reaches it.

The tables are the one shared MetaData every table module registers on when it is imported:
the platform's are imported below, and each context's description imports its adapters.
"""

from __future__ import annotations

from collections.abc import Sequence

from ledgerd.main.bounded_context import BoundedContext
from ledgerd.main.contexts import ENABLED_CONTEXTS
from ledgerd.platform.db.migrations import Migrations
from ledgerd.platform.db.schema import metadata
from ledgerd.platform.messaging import consumer
from ledgerd.platform.outbox import tables as outbox_tables

# Imported for their tables (the inbox, the outbox's), which join the shared metadata.
_PLATFORM_TABLES = (consumer, outbox_tables)
PLATFORM_MIGRATIONS = ("ledgerd.platform.outbox:migrations",)


def migrations_for(contexts: Sequence[BoundedContext]) -> Migrations:
    """The platform's revisions and those of ``contexts``, in that order."""
    locations = (*PLATFORM_MIGRATIONS, *(where for c in contexts for where in c.migrations))
    return Migrations(version_locations=locations, metadata=metadata)


MIGRATIONS = migrations_for(ENABLED_CONTEXTS)
