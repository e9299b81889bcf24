"""A deterministic stand-in for ``ledgerd.kernel.ids.random_id``."""

from __future__ import annotations

from ledgerd.kernel.ids import IdGenerator


class SequentialIds:
    """Implements ``IdGenerator``: ``t000001``, ``t000002``, ... (valid client-id syntax too)."""

    def __init__(self, prefix: str = "t") -> None:
        self._prefix = prefix
        self.issued = 0

    def __call__(self) -> str:
        self.issued += 1
        return self.format(self.issued)

    def format(self, number: int) -> str:
        """The id the ``number``-th call returns."""
        return f"{self._prefix}{number:06d}"

    def peek(self) -> str:
        """The id the next call will return."""
        return self.format(self.issued + 1)


def _conforms(ids: SequentialIds) -> IdGenerator:
    return ids
