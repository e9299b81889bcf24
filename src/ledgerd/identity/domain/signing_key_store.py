"""Where the signing key set is kept, so that every process signs and verifies with the same one.

The set travels as the text ``ledgerd.platform.auth.keys`` serialises it to: the domain and the
use cases never look inside (they may not import the platform's cryptography), and the store
keeps it as it comes. Each stored set has a version, one more on every save, so that a save
can name the version it replaces (of two ``ledgerd keys rotate`` at once, one wins) and a
running server can ask cheaply whether the set changed since it loaded it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class StoredKeySet:
    version: int
    # The serialised set holds the private keys: kept out of repr, so no log can show it.
    text: str = field(repr=False)


class SigningKeyStore(Protocol):
    async def load(self) -> StoredKeySet | None:
        """The stored set, or None if none was ever saved."""
        ...

    async def version(self) -> int | None:
        """The stored set's version only (None if none): what a poll for a rotation reads."""
        ...

    async def save(self, text: str, *, read_version: int | None) -> StoredKeySet:
        """Store ``text`` as the set if the stored version is still ``read_version``.

        ``read_version`` None means none was stored when the caller looked. If another save
        came first, nothing is stored and this raises ``ConcurrencyConflictError``.
        """
        ...
