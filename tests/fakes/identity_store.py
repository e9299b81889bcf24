"""In-memory fakes of the identity context's persistence ports, with a unit of work.

``IdentityTables`` is the "database". ``FakeIdentityUnitOfWork.begin()`` snapshots it and puts
the snapshot back unless ``commit()`` was called; transactions run one at a time (like SQLite's
write lock). The refresh-family repository keeps the digest index the SQL one will: every
digest a family ever issued leads to it, so a spent token is recognised, and an update from a
stale generation raises ``ConcurrencyConflictError`` as the SQL compare-and-set will.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from ledgerd.identity.domain.clients import OAuthClient
from ledgerd.identity.domain.refresh_families import RefreshFamily
from ledgerd.identity.domain.repositories import ClientRepository, RefreshFamilyRepository
from ledgerd.kernel.errors import ConcurrencyConflictError
from ledgerd.kernel.unit_of_work import UnitOfWork


@dataclass
class IdentityTables:
    clients: dict[str, OAuthClient] = field(default_factory=dict)
    families: dict[str, RefreshFamily] = field(default_factory=dict)
    # token digest -> family id, for every token a family has issued
    family_of_digest: dict[str, str] = field(default_factory=dict)

    def copy(self) -> IdentityTables:
        return IdentityTables(dict(self.clients), dict(self.families), dict(self.family_of_digest))

    def restore(self, saved: IdentityTables) -> None:
        for table in dataclasses.fields(self):
            setattr(self, table.name, getattr(saved, table.name))


_current: ContextVar[FakeIdentityTransaction | None] = ContextVar("fake_identity_tx", default=None)


class FakeIdentityTransaction:
    def __init__(self, uow: FakeIdentityUnitOfWork, *, read_only: bool) -> None:
        self.uow, self.read_only, self.committed = uow, read_only, False

    async def commit(self) -> None:
        if self.committed:
            msg = "commit() twice"
            raise RuntimeError(msg)
        self.committed = True
        self.uow.commits += 1


class FakeIdentityUnitOfWork:
    """Implements ``UnitOfWork`` over `IdentityTables`."""

    def __init__(self, tables: IdentityTables | None = None) -> None:
        self.tables = IdentityTables() if tables is None else tables
        self.commits = 0
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def begin(self, *, read_only: bool = False) -> AsyncIterator[FakeIdentityTransaction]:
        async with self._lock:
            transaction = FakeIdentityTransaction(self, read_only=read_only)
            saved = self.tables.copy()
            token = _current.set(transaction)
            try:
                yield transaction
            finally:
                _current.reset(token)
                if not transaction.committed:
                    self.tables.restore(saved)

    def reading(self) -> IdentityTables:
        self._transaction()
        return self.tables

    def writing(self) -> IdentityTables:
        transaction = self._transaction()
        if transaction.read_only or transaction.committed:
            msg = "write in a read-only or committed unit of work"
            raise RuntimeError(msg)
        return self.tables

    def _transaction(self) -> FakeIdentityTransaction:
        transaction = _current.get()
        if transaction is None or transaction.uow is not self:
            msg = "no unit of work is active: wrap repository calls in `async with uow.begin()`"
            raise RuntimeError(msg)
        return transaction


class FakeClientRepository:
    def __init__(self, uow: FakeIdentityUnitOfWork) -> None:
        self._uow = uow

    async def get(self, client_id: str) -> OAuthClient | None:
        return self._uow.reading().clients.get(client_id)

    async def add(self, client: OAuthClient) -> None:
        clients = self._uow.writing().clients
        if client.client_id in clients:
            msg = f"unique violation: client {client.client_id}"
            raise ConcurrencyConflictError(msg)
        clients[client.client_id] = client


class FakeRefreshFamilyRepository:
    def __init__(self, uow: FakeIdentityUnitOfWork) -> None:
        self._uow = uow

    async def find_by_token_digest(self, digest: str) -> RefreshFamily | None:
        tables = self._uow.reading()
        family_id = tables.family_of_digest.get(digest)
        return None if family_id is None else tables.families[family_id]

    async def add(self, family: RefreshFamily) -> None:
        tables = self._uow.writing()
        if family.family_id in tables.families or family.current_digest in tables.family_of_digest:
            msg = f"unique violation: family {family.family_id}"
            raise ConcurrencyConflictError(msg)
        tables.families[family.family_id] = family
        tables.family_of_digest[family.current_digest] = family.family_id

    async def update(self, family: RefreshFamily, *, read_generation: int) -> None:
        tables = self._uow.writing()
        stored = tables.families[family.family_id]
        if stored.generation != read_generation:
            msg = f"family {family.family_id} changed since generation {read_generation}"
            raise ConcurrencyConflictError(msg)
        tables.families[family.family_id] = family
        tables.family_of_digest[family.current_digest] = family.family_id

    async def is_revoked(self, family_id: str) -> bool:
        family = self._uow.reading().families.get(family_id)
        return family is not None and family.is_revoked


def _conforms(
    uow: FakeIdentityUnitOfWork,
    clients: FakeClientRepository,
    families: FakeRefreshFamilyRepository,
) -> tuple[UnitOfWork, ClientRepository, RefreshFamilyRepository]:
    return uow, clients, families
