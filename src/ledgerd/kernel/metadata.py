"""Free-form string metadata attached to ledgers, accounts and transfers."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ledgerd.kernel.errors import validation_error

MAX_METADATA_ENTRIES = 64
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 1024

Metadata = Mapping[str, str]
EMPTY_METADATA: Metadata = MappingProxyType({})


def check_metadata(value: object, field: str = "metadata") -> Metadata:
    """Return a read-only copy of ``value`` if it is a small ``str -> str`` mapping."""
    if value is None:
        return EMPTY_METADATA
    if not isinstance(value, Mapping):
        raise validation_error(field, "must be an object of string keys and string values")
    if len(value) > MAX_METADATA_ENTRIES:
        raise validation_error(field, f"may hold at most {MAX_METADATA_ENTRIES} entries")
    checked: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_METADATA_KEY:
            raise validation_error(field, f"keys must be strings of 1..{MAX_METADATA_KEY} chars")
        if not isinstance(item, str) or len(item) > MAX_METADATA_VALUE:
            raise validation_error(
                f"{field}.{key}", f"must be a string of at most {MAX_METADATA_VALUE} chars"
            )
        checked[key] = item
    return MappingProxyType(checked)
