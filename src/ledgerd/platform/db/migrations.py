"""Run Alembic migrations programmatically, on an async engine, from any running event loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

SCRIPT_LOCATION = "ledgerd:migrations"

_Action: TypeAlias = Callable[[Config], None]


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    await _run(engine, lambda config: command.upgrade(config, revision))


async def downgrade(engine: AsyncEngine, revision: str = "base") -> None:
    await _run(engine, lambda config: command.downgrade(config, revision))


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def _run(engine: AsyncEngine, action: _Action) -> None:
    # env.py takes the connection from the config instead of making its own engine, so the
    # migration runs on our engine (and its SQLite settings) inside the caller's event loop.
    async with engine.begin() as connection:
        await connection.run_sync(_with_connection, action)


def _with_connection(connection: Connection, action: _Action) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    action(config)
