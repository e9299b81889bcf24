"""Identifiers: client-chosen ids are validated here; server ids are generated here."""

from __future__ import annotations

import re
import uuid
from typing import Protocol

from ledgerd.kernel.errors import validation_error
from ledgerd.kernel.rules import TextRule

ID_PATTERN = re.compile(r"^[A-Za-z0-9_:.-]{1,128}$")
# Ids travel as URL path segments, and "." and ".." are the two segments URL normalisation
# removes (RFC 3986, 5.2.4): behind a normalising proxy such an id could be created (over gRPC,
# or in a body) but never reached by its URL. The pattern admits them, so they are named here.
# Nothing else the pattern admits is changed by normalisation: its characters are unreserved
# but ':', which normalisers must leave as sent, and case is only normalised in the host.
DOT_SEGMENTS = frozenset({".", ".."})
# What check_id accepts.
ID_RULE = TextRule(pattern=ID_PATTERN.pattern, excluded=DOT_SEGMENTS)


def check_id_shape(value: object, field: str) -> str:
    """Return ``value`` if it matches :data:`ID_PATTERN`, else raise VALIDATION_FAILED.

    The rule for ids already stored, which may predate :data:`DOT_SEGMENTS` (a page cursor
    names one); a new id must pass :func:`check_id`.
    """
    if value == "":
        # proto3 cannot tell an empty string from a field left out, and either is a missing id.
        raise validation_error(field, "is required")
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise validation_error(field, f"must match {ID_PATTERN.pattern}")
    return value


def check_id(value: object, field: str) -> str:
    """Return ``value`` if it is a well-formed client id, else raise VALIDATION_FAILED."""
    checked = check_id_shape(value, field)
    if checked in DOT_SEGMENTS:
        raise validation_error(field, "must not be '.' or '..' (URLs cannot carry them)")
    return checked


class IdGenerator(Protocol):
    def __call__(self) -> str: ...


def random_id() -> str:
    """A random 128-bit id as 32 hex digits; unguessable and collision-free in practice."""
    return uuid.uuid4().hex
