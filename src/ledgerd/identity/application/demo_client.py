"""The demo client of ``ledgerd serve --demo``: credentials for a first hour with the API.

A confidential client of a fixed id, granted every scope on the demo ledger (and on the ledgers
it creates, as any creator). It is made on the first ``serve --demo`` and given a new secret on
each later one, because a secret is stored only hashed: the one printed last time cannot be
shown again. Revoking it (``ledgerd clients revoke ledgerd-demo``) is final: ``serve --demo``
then prints no credentials rather than bring it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from ledgerd.identity.application.manage_clients import CreateClient, NewClient, ResetClientSecret
from ledgerd.identity.domain.grants import AccessGrant
from ledgerd.identity.domain.ledger_grants import ClientLedgerGrants
from ledgerd.identity.domain.repositories import ClientRepository
from ledgerd.identity.domain.scopes import Scope
from ledgerd.kernel.unit_of_work import UnitOfWork

DEMO_CLIENT_ID: Final = "ledgerd-demo"
DEMO_CLIENT_NAME: Final = "the demo client of `ledgerd serve --demo`"


@dataclass(frozen=True, slots=True)
class DemoCredentials:
    client_id: str
    secret: str = field(repr=False)


class ProvideDemoClient:
    def __init__(
        self,
        uow: UnitOfWork,
        clients: ClientRepository,
        grants: ClientLedgerGrants,
        create: CreateClient,
        reset_secret: ResetClientSecret,
    ) -> None:
        self._uow, self._clients, self._grants = uow, clients, grants
        self._create, self._reset_secret = create, reset_secret

    async def __call__(self, ledger_id: str) -> DemoCredentials | None:
        """Credentials of the demo client, granted ``ledger_id``; None if it was revoked."""
        async with self._uow.begin(read_only=True):
            existing = await self._clients.get(DEMO_CLIENT_ID)
        if existing is None:
            created = await self._create(
                NewClient(
                    name=DEMO_CLIENT_NAME,
                    grant=AccessGrant(frozenset(Scope), frozenset({ledger_id})),
                    client_id=DEMO_CLIENT_ID,
                )
            )
            assert created.secret is not None  # noqa: S101 - a confidential client has one
            return DemoCredentials(DEMO_CLIENT_ID, created.secret)
        if not existing.is_active:
            return None
        async with self._uow.begin() as tx:
            await self._grants.grant_ledger(DEMO_CLIENT_ID, ledger_id)
            await tx.commit()
        secret = await self._reset_secret(DEMO_CLIENT_ID)
        return None if secret is None else DemoCredentials(DEMO_CLIENT_ID, secret)
