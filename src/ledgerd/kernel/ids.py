"""Identifiers: client-chosen ids are validated here; server ids are generated here."""

from __future__ import annotations

import re
import uuid
from typing import Protocol

from ledgerd.kernel.errors import validation_error

ID_PATTERN = re.compile(r"^[A-Za-z0-9_:.-]{1,128}$")


def check_id(value: object, field: str) -> str:
    """Return ``value`` if it is a well-formed client id, else raise VALIDATION_FAILED."""
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise validation_error(field, f"must match {ID_PATTERN.pattern}")
    return value


class IdGenerator(Protocol):
    def __call__(self) -> str: ...


def random_id() -> str:
    """A random 128-bit id as 32 hex digits; unguessable and collision-free in practice."""
    return uuid.uuid4().hex
