"""Run Alembic migrations programmatically, on an async engine, from any running event loop.

The platform knows no context: whoever composes the program says where the revisions are (one
version location per owner of tables) and which tables they build (:class:`Migrations`). Each
owner's revisions may start a branch of their own, so the history can have several heads: the
schema is current when the database holds every one of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import coerce_resource_to_filename
from sqlalchemy import Connection, MetaData
from sqlalchemy.ext.asyncio import AsyncEngine

# The Alembic environment (env.py) and the template of new revisions; the revisions themselves
# are in the version locations.
SCRIPT_LOCATION = "ledgerd:migrations"
# What env.py finds in the config's attributes.
CONNECTION_ATTRIBUTE = "connection"
METADATA_ATTRIBUTE = "target_metadata"

_Action: TypeAlias = Callable[[Config], None]


@dataclass(frozen=True, slots=True)
class Migrations:
    """One schema's history: the folders its revisions are in, and the tables they build.

    A location is a folder path or ``package:folder`` (``ledgerd.ledger.adapters:migrations``),
    which is found inside an installed package too.
    """

    version_locations: tuple[str, ...]
    # The tables as the code declares them: env.py's target (autogenerate compares with it).
    metadata: MetaData

    def _config(self) -> Config:
        # Alembic passes over a location that is not there: the revisions in it would be
        # missing without a word, and so would their tables.
        missing = [
            where
            for where in self.version_locations
            if not coerce_resource_to_filename(where).is_dir()
        ]
        if missing:
            msg = f"no such migrations folder: {', '.join(missing)}"
            raise ValueError(msg)
        config = Config()
        config.set_main_option("script_location", SCRIPT_LOCATION)
        # One location a line: a ``package:folder`` location holds the other separators.
        config.set_main_option("path_separator", "newline")
        # The config is a ConfigParser: ``%`` would start an interpolation.
        locations = "\n".join(self.version_locations).replace("%", "%%")
        config.set_main_option("version_locations", locations)
        config.attributes[METADATA_ATTRIBUTE] = self.metadata
        return config

    def heads(self) -> frozenset[str]:
        """The newest revision of each branch: an up-to-date database has each one applied."""
        return frozenset(ScriptDirectory.from_config(self._config()).get_heads())

    async def upgrade(self, engine: AsyncEngine, revision: str = "heads") -> None:
        await self._run(engine, lambda config: command.upgrade(config, revision))

    async def downgrade(self, engine: AsyncEngine, revision: str = "base") -> None:
        await self._run(engine, lambda config: command.downgrade(config, revision))

    async def is_current(self, engine: AsyncEngine) -> bool:
        """Whether the database has every head applied: an upgrade to ``heads`` has nothing to do.

        Not a comparison with what it holds: a branch that ``depends_on`` a revision of another
        makes the database hold the dependent revision only, the other one applied below it.
        """
        script = ScriptDirectory.from_config(self._config())
        held = await current_revisions(engine)
        known = {revision.revision for revision in script.walk_revisions()}
        if not held <= known:
            return False  # a revision of a newer ledgerd, or of a context no longer enabled
        applied = {
            revision.revision
            for head in held
            for revision in script.iterate_revisions(head, "base")
        }
        return set(script.get_heads()) <= applied

    async def _run(self, engine: AsyncEngine, action: _Action) -> None:
        # env.py takes the connection from the config instead of making its own engine, so the
        # migration runs on our engine (and its SQLite settings) inside the caller's event loop.
        async with engine.begin() as connection:
            await connection.run_sync(self._with_connection, action)

    def _with_connection(self, connection: Connection, action: _Action) -> None:
        config = self._config()
        config.attributes[CONNECTION_ATTRIBUTE] = connection
        action(config)


async def current_revisions(engine: AsyncEngine) -> frozenset[str]:
    """The revisions the database holds: one per branch it is on, none if never migrated."""
    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: frozenset(MigrationContext.configure(sync).get_current_heads())
        )
