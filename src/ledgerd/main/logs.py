"""Every command's logging: one format for ledgerd's records and its libraries' alike.

What a command prints on stdout is its output for the user (``serve``'s banner, ``verify``'s
report); everything else is a log record on stderr, in this format, at LEDGERD_LOG_LEVEL.
"""

from __future__ import annotations

import logging

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# They narrate at INFO what ledgerd says itself (alembic: each migration step, which the
# commands sum up; uvicorn: its start and stop, which serve's banner and its own records say).
_NARRATORS = ("alembic", "uvicorn")
# Their DEBUG records trace internals (a line per statement, per dependency resolved, per
# event-loop hand-over) and would bury ledgerd's own; LEDGERD_DATABASE_ECHO shows the SQL.
_TRACERS = ("aiosqlite", "dishka", "grpc")


def configure_logging(level: str) -> None:
    """Records at ``level`` (a level's name) and above to stderr, in ``LOG_FORMAT``."""
    logging.basicConfig(level=level, format=LOG_FORMAT)
    threshold = logging.getLevelNamesMapping()[level]
    for name in _NARRATORS:
        logging.getLogger(name).setLevel(max(threshold, logging.WARNING))
    for name in _TRACERS:
        logging.getLogger(name).setLevel(max(threshold, logging.INFO))
