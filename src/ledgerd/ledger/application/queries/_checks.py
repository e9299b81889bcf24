"""Argument checks several queries share."""

from __future__ import annotations

from datetime import datetime

from ledgerd.kernel.errors import validation_error


def check_as_of(as_of: datetime | None) -> None:
    if as_of is not None and as_of.tzinfo is None:
        raise validation_error("as_of", "must carry a time zone")


def check_window(start: datetime | None, end: datetime | None) -> None:
    """A listing's ``[start_time, end_time)``: instants with a time zone, running forwards."""
    for name, bound in (("start_time", start), ("end_time", end)):
        if bound is not None and bound.tzinfo is None:
            raise validation_error(name, "must carry a time zone")
    if start is not None and end is not None and start > end:
        # An empty page would look like "nothing in that window" to a client that swapped
        # the two; the window [start_time, end_time) must run forwards (or be empty).
        raise validation_error("end_time", "must not be before start_time")
