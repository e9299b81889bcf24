"""Token revocation (RFC 7009): a client ends one of its refresh tokens, and so its family.

Revoking a refresh token revokes its whole family: every refresh token in it, and the family's
access tokens through the revocation check keyed by family. An unknown token, another client's
token, an access token or an already-revoked one are answered alike, as success (RFC 7009 §2.2):
the answer must not tell a client whether a token it does not own exists. An access token cannot
be revoked alone: it is a signed JWT, short-lived, checked without the database; revoking the
refresh token it came from is how a client ends it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ledgerd.identity.application.authenticate_any_client import (
    ClientIdentification,
    IdentifyClient,
)
from ledgerd.identity.application.ports import RefreshTokenMaker
from ledgerd.identity.domain.refresh_families import RevocationCause
from ledgerd.identity.domain.repositories import RefreshFamilyRepository
from ledgerd.kernel.clock import Clock
from ledgerd.kernel.unit_of_work import UnitOfWork, retry_on_conflict


@dataclass(frozen=True, slots=True)
class RevocationRequest:
    client: ClientIdentification
    token: str = field(repr=False)


class RevokeToken:
    def __init__(
        self,
        *,
        identify: IdentifyClient,
        uow: UnitOfWork,
        families: RefreshFamilyRepository,
        digests: RefreshTokenMaker,
        clock: Clock,
    ) -> None:
        self._identify, self._uow, self._families = identify, uow, families
        self._digests, self._clock = digests, clock

    async def __call__(self, request: RevocationRequest) -> None:
        # RFC 7009 §2.1: the client authenticates (a public client names itself).
        client = await self._identify(request.client)
        digest = self._digests.digest(request.token)
        await retry_on_conflict(lambda: self._revoke(client.client_id, digest))

    async def _revoke(self, client_id: str, digest: str) -> None:
        async with self._uow.begin() as tx:
            family = await self._families.find_by_token_digest(digest)
            if family is None or family.client_id != client_id or family.is_revoked:
                return
            revoked = family.revoke(self._clock.now(), RevocationCause.REVOKED)
            await self._families.update(revoked, read_generation=family.generation)
            await tx.commit()
