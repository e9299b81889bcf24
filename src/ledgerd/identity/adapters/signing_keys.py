"""The signing key set, stored: loaded (or made) at start, rotated, and reloaded when rotated.

The glue between the key store (a port holding opaque text) and ``platform.auth``'s key set and
`KeyRing`: the use cases may not import the cryptography, so the parsing and the rotation rule
meet the store here, on the adapters' side. So does the sealing (``KeySetSealing``): every
write seals the set under the current wrapping key if one is set, and every read opens what it
finds, sealed or plain (docs/security.md, "Signing keys and rotation").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ledgerd.identity.domain.signing_key_store import SigningKeyStore, StoredKeySet
from ledgerd.kernel.errors import ConcurrencyConflictError
from ledgerd.kernel.unit_of_work import UnitOfWork
from ledgerd.platform.auth.keys import KeyRing, SigningKeySet
from ledgerd.platform.auth.sealed_keys import KeySetSealing


@dataclass(frozen=True, slots=True)
class VersionedKeySet:
    key_set: SigningKeySet
    version: int


def _parsed(stored: StoredKeySet, sealing: KeySetSealing) -> VersionedKeySet:
    return VersionedKeySet(sealing.open(stored.text), stored.version)


async def load_or_create_key_set(
    uow: UnitOfWork, store: SigningKeyStore, now: datetime, sealing: KeySetSealing
) -> VersionedKeySet:
    """The stored set; on a database that has none yet, a new one, stored first.

    Two servers starting at once on a new database store one set between them: the one whose
    save lost reads the other's.
    """
    async with uow.begin(read_only=True):
        stored = await store.load()
    if stored is not None:
        return _parsed(stored, sealing)
    fresh = SigningKeySet.generate(now)
    try:
        async with uow.begin() as tx:
            saved = await store.save(sealing.seal(fresh), read_version=None)
            await tx.commit()
    except ConcurrencyConflictError:
        async with uow.begin(read_only=True):
            stored = await store.load()
        if stored is None:
            raise  # a conflict with a set that is not there: the store is inconsistent
        return _parsed(stored, sealing)
    return VersionedKeySet(fresh, saved.version)


async def rotate_key_set(
    uow: UnitOfWork,
    store: SigningKeyStore,
    now: datetime,
    token_lifetime: timedelta,
    sealing: KeySetSealing,
) -> VersionedKeySet:
    """A new current signer stored, the previous one retired (``SigningKeySet.rotate``).

    One transaction reads and saves from the version read: of two rotations at once, the
    second raises ``ConcurrencyConflictError`` and stores nothing. It is not retried: the
    operator asked for one rotation, and one happened. With no set stored yet, the new set
    is a first one. The rotated set is sealed under the current wrapping key, whatever the
    stored one was sealed with (or not).
    """
    async with uow.begin() as tx:
        stored = await store.load()
        if stored is None:
            rotated = SigningKeySet.generate(now)
            read_version = None
        else:
            rotated = sealing.open(stored.text).rotate(now, token_lifetime)
            read_version = stored.version
        saved = await store.save(sealing.seal(rotated), read_version=read_version)
        await tx.commit()
    return VersionedKeySet(rotated, saved.version)


@dataclass(frozen=True, slots=True)
class Resealed:
    stored: VersionedKeySet
    # False: it was stored that way already, and nothing was written.
    written: bool


async def reseal_key_set(
    uow: UnitOfWork, store: SigningKeyStore, sealing: KeySetSealing
) -> Resealed | None:
    """The stored set written again, unchanged, as ``sealing`` writes: what ``keys encrypt`` does.

    None if no set is stored; nothing written if it is already stored that way. Like a rotation
    it saves from the version read, so a rotation at the same moment makes one of the two raise
    ``ConcurrencyConflictError``. Servers reload it (a new version) with the same keys.
    """
    async with uow.begin() as tx:
        stored = await store.load()
        if stored is None:
            return None
        key_set = sealing.open(stored.text)
        if not sealing.needs_resealing(stored.text):
            return Resealed(VersionedKeySet(key_set, stored.version), written=False)
        saved = await store.save(sealing.seal(key_set), read_version=stored.version)
        await tx.commit()
    return Resealed(VersionedKeySet(key_set, saved.version), written=True)


class KeyRingReloader:
    """A process's `KeyRing`, kept on the stored set: a rotation elsewhere reaches it here.

    ``reload_if_rotated`` reads the stored version only (one indexed row) and loads the set
    when it differs from the one the ring holds; a loop calling it every few seconds is how a
    running server picks up ``ledgerd keys rotate`` without a restart.
    """

    def __init__(
        self,
        uow: UnitOfWork,
        store: SigningKeyStore,
        loaded: VersionedKeySet,
        sealing: KeySetSealing,
    ) -> None:
        self._uow, self._store, self._sealing = uow, store, sealing
        # The ring the process's issuer and verifier read: made here, so that it holds the
        # set whose version this reloader remembers.
        self.ring = KeyRing(loaded.key_set)
        self.version = loaded.version

    async def reload_if_rotated(self) -> bool:
        """Whether the ring took a newer set."""
        async with self._uow.begin(read_only=True):
            if await self._store.version() == self.version:
                return False
            stored = await self._store.load()
        if stored is None:
            return False  # no set stored (any more): the ring keeps the one it has
        # Parsed before anything changes: a set that cannot be read leaves the ring as it was.
        loaded = _parsed(stored, self._sealing)
        self.ring.replace(loaded.key_set)
        self.version = loaded.version
        return True
