"""Free-form string metadata attached to ledgers, accounts and transfers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from ledgerd.kernel.errors import validation_error
from ledgerd.kernel.rules import MapRule, TextRule
from ledgerd.kernel.text import check_text, text_rule

MAX_METADATA_ENTRIES = 64
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 1024
# Keys are names, not prose: a plain pattern keeps them safe inside JSON paths on every database
# (metadata filters look keys up with JSON path expressions).
METADATA_KEY = rf"[A-Za-z0-9_.:-]{{1,{MAX_METADATA_KEY}}}"
METADATA_KEY_PATTERN = re.compile(f"^{METADATA_KEY}$")
# What check_metadata accepts.
METADATA_RULE = MapRule(
    MAX_METADATA_ENTRIES,
    keys=TextRule(pattern=METADATA_KEY_PATTERN.pattern),
    values=text_rule(MAX_METADATA_VALUE),
)

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
        if not isinstance(key, str) or not METADATA_KEY_PATTERN.fullmatch(key):
            raise validation_error(field, f"keys must match {METADATA_KEY_PATTERN.pattern}")
        checked[key] = check_text(item, f"{field}.{key}", max_length=MAX_METADATA_VALUE)
    return MappingProxyType(checked)
