"""Log a repeated failure once per interval, with a count, instead of once per occurrence.

During an outage every request fails the same way. Logging each one (with its traceback)
wrote 92.8 MB in 25 s with 32 clients (issue 11): the log buried its one useful line and
became a load of its own. A :class:`ThrottledLog` writes the first occurrence of each kind of
failure in an interval as one line, notes how many more of that kind it held back when the
next interval's first one comes, and keeps the first traceback for DEBUG.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

# Kinds remembered at once; beyond it the stalest are forgotten (their counts are logged).
_MAX_KINDS = 1000


@dataclass(slots=True)
class _Kind:
    logged_at: float
    held_back: int = 0


class ThrottledLog:
    """One line per kind of failure per ``interval_s``; the rest are counted."""

    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._clock = clock
        self._kinds: dict[str, _Kind] = {}

    def log(
        self,
        level: int,
        kind: str,
        message: str,
        *args: object,
        error: BaseException | None = None,
        traceback_level: int = logging.DEBUG,
    ) -> bool:
        """Log ``message % args`` unless ``kind`` was logged within the interval; True if logged.

        The error's traceback goes out at ``traceback_level`` (DEBUG unless the caller wants
        it with the line itself, for failures nobody expected).
        """
        now = self._clock()
        seen = self._kinds.get(kind)
        if seen is not None and now - seen.logged_at < self._interval_s:
            seen.held_back += 1
            return False
        held_back = 0 if seen is None else seen.held_back
        self._remember(kind, now)
        if held_back:
            message += " (and %d more like it in the last %.0f s)"
            args = (*args, held_back, now - seen.logged_at if seen else 0.0)
        with_traceback = error is not None and traceback_level >= level
        self._logger.log(level, message, *args, exc_info=error if with_traceback else None)
        if error is not None and not with_traceback:
            self._logger.log(traceback_level, "the first %s in full:", kind, exc_info=error)
        return True

    def unexpected(self, error: BaseException, request_id: str) -> None:
        """An error no rule foresaw (a bug), logged in full once per kind and interval.

        A bug fails every call that meets it: the first is logged with its request id and
        traceback, the others are counted.
        """
        self.log(
            logging.ERROR,
            type(error).__name__,
            "unexpected error (request %s)",
            request_id,
            error=error,
            traceback_level=logging.ERROR,
        )

    def _remember(self, kind: str, now: float) -> None:
        self._kinds.pop(kind, None)
        self._kinds[kind] = _Kind(logged_at=now)
        while len(self._kinds) > _MAX_KINDS:
            stale = next(iter(self._kinds))
            dropped = self._kinds.pop(stale)
            if dropped.held_back:
                self._logger.warning("%s: %d more held back", stale, dropped.held_back)
