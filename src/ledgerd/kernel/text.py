"""Free text from clients (names, metadata values) that every database can store as given."""

from __future__ import annotations

from ledgerd.kernel.errors import validation_error
from ledgerd.kernel.rules import TextRule

# Any character but NUL (lone surrogates, also refused, cannot be written as a pattern).
TEXT_CHARACTER = r"[^\x00]"
TEXT_PATTERN = f"^{TEXT_CHARACTER}*$"


def text_rule(max_length: int) -> TextRule:
    """What ``check_text(..., max_length=max_length)`` accepts."""
    return TextRule(pattern=TEXT_PATTERN, max_length=max_length)


def check_text(value: object, field: str, *, max_length: int) -> str:
    """Return ``value`` if it is a string both databases store faithfully, else raise.

    PostgreSQL refuses NUL characters in text and lone surrogates cannot be encoded as UTF-8,
    so either would fail deep in a driver instead of as a clear VALIDATION_FAILED.
    """
    if not isinstance(value, str):
        raise validation_error(field, "must be a string")
    if len(value) > max_length:
        raise validation_error(field, f"must be at most {max_length} characters")
    if "\x00" in value:
        raise validation_error(field, "must not contain NUL characters")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise validation_error(field, "must be valid Unicode text") from None
    return value
