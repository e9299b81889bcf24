"""Counting the statements an engine sends to its database."""

from collections.abc import Sized
from dataclasses import dataclass, field

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


@dataclass
class StatementLog:
    """Every statement executed through the engine since ``count_statements``, in order."""

    statements: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.statements)

    def since(self, start: int) -> list[str]:
        return self.statements[start:]


def count_statements(engine: AsyncEngine) -> StatementLog:
    """Log the statements ``engine`` executes from now on, for as long as it lives.

    An executemany counts once per parameter set: the database executes it that many times
    (SQLite in a loop, asyncpg as one pipeline of single-row executions).
    """
    log = StatementLog()

    @event.listens_for(engine.sync_engine, "before_cursor_execute", named=True)
    def _record(**event_arguments: object) -> None:
        statement = str(event_arguments["statement"])
        parameters = event_arguments["parameters"]
        times = (
            len(parameters)
            if event_arguments["executemany"] and isinstance(parameters, Sized)
            else 1
        )
        log.statements.extend([statement] * times)

    return log
