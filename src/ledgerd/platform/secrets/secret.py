"""A value that must not be seen: redacted wherever it could be printed or logged."""

from __future__ import annotations

from typing import Final, NoReturn

REDACTED: Final = "**********"


class Secret:
    """A secret value; ``reveal()`` is the one way to its text, for the one place that needs it.

    ``repr``, ``str`` and formatting all give ``REDACTED``, so a secret in a log record, an
    exception's arguments or a dataclass's ``repr`` shows nothing of itself. Pickling is
    refused: a copy on disk is a leak.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, _spec: str) -> str:
        return REDACTED

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> NoReturn:
        msg = "a Secret is not pickled"
        raise TypeError(msg)
