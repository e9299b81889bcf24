"""Generic pages and opaque cursors shared by every listing."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from ledgerd.kernel.errors import validation_error
from ledgerd.kernel.rules import IntegerRule

T = TypeVar("T")

_MAX_INT_DIGITS = 19
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
# What check_page_size accepts (APIs read 0, "unset", as the default).
PAGE_SIZE_RULE = IntegerRule(1, MAX_PAGE_SIZE)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing; ``next_cursor`` is None on the last page."""

    items: Sequence[T]
    next_cursor: str | None


def check_page_size(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_PAGE_SIZE
    if not 1 <= limit <= MAX_PAGE_SIZE:
        # Named as every API names it: the use cases call it `limit`, clients `page_size`.
        raise validation_error("page_size", f"must be between 1 and {MAX_PAGE_SIZE}")
    return limit


def encode_cursor(position: int | str) -> str:
    """Cursors are opaque to clients so the position they encode can change later."""
    return base64.urlsafe_b64encode(f"v1:{position}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    """The position a cursor from ``encode_cursor`` holds; None (or "") means the start."""
    if cursor is None or cursor == "":
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise validation_error("cursor", "is not a cursor returned by this API") from None
    version, _, position = raw.partition(":")
    if version != "v1" or not position:
        raise validation_error("cursor", "is not a cursor returned by this API")
    return position


def decode_int_cursor(cursor: str | None) -> int | None:
    position = decode_cursor(cursor)
    if position is None:
        return None
    # isdigit() alone admits digits int() refuses ("²"); positions fit in 64 bits.
    if not (position.isascii() and position.isdigit() and len(position) <= _MAX_INT_DIGITS):
        raise validation_error("cursor", "is not a cursor returned by this API")
    return int(position)
