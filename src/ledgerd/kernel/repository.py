"""The generic repository port every aggregate repository specialises."""

from __future__ import annotations

from typing import Protocol, TypeVar

T = TypeVar("T")
ID_contra = TypeVar("ID_contra", contravariant=True)


class Repository(Protocol[T, ID_contra]):
    """Load and add aggregates of type ``T`` keyed by ``ID``, inside the current unit of work."""

    async def get(self, key: ID_contra) -> T | None: ...

    async def add(self, item: T) -> None: ...
