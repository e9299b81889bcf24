"""Admission: at most ``limit`` calls run at once; the next is refused at once, OVERLOADED.

One instance bounds a whole process, whatever transport a call came in on: the request
pipeline's admission concern, which gRPC and the REST gateway both run, takes its permits
here. A call over the limit is not queued (its client's deadline would pass in the queue, and
the queue itself is what overload grows): it is refused with a retry hint, which both
transports pass on (gRPC RetryInfo, HTTP Retry-After), so clients back off instead of timing
out.

Taking and returning a permit never awaits, so on one event loop — where every call of a
process runs — no lock is needed and no permit can be lost between check and count.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ledgerd.kernel.errors import RETRY_AFTER_DETAIL, ErrorCode, LedgerdError


class Admission:
    """Permits for ``limit`` calls at once; ``retry_after_s`` is the hint given to refusals."""

    def __init__(self, limit: int, *, retry_after_s: float) -> None:
        if limit < 1:
            msg = f"the limit must be at least 1, not {limit}"
            raise ValueError(msg)
        self._limit = limit
        self._retry_after_s = retry_after_s
        self._in_flight = 0
        self._refused = 0

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def in_flight(self) -> int:
        """Calls holding a permit now."""
        return self._in_flight

    @property
    def refused(self) -> int:
        """Calls refused since start."""
        return self._refused

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Hold a permit for the ``with`` block, or raise OVERLOADED if none is free.

        The permit is returned however the block ends: its result, an error, a cancellation,
        or a streaming generator closed between items.
        """
        if self._in_flight >= self._limit:
            self._refused += 1
            raise overloaded(self._retry_after_s)
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1


def overloaded(retry_after_s: float) -> LedgerdError:
    return LedgerdError(
        ErrorCode.OVERLOADED,
        "the server is running as many calls as it takes; retry shortly",
        {RETRY_AFTER_DETAIL: f"{retry_after_s:g}"},
    )
