"""The refresh-token grant (RFC 6749 §6) with rotation and reuse detection.

Each use of a family's current refresh token returns a new access token and the family's next
refresh token; the one presented is spent. Presenting a spent one revokes the family (see
`domain.refresh_families`). Of two concurrent uses of one token, storage lets one rotate; the
other is retried, finds the token spent, and so revokes the family: a race on one refresh token
is exactly what a stolen copy looks like, and the safe answer is to end the family.

The client is identified as at the code exchange (`IdentifyClient`): a confidential client by its
secret, a public one by its ``client_id`` alone. A public client's refresh token is then a bearer
credential, and rotation with reuse detection is what makes that acceptable (OAuth 2.0 Security
BCP, RFC 9700 §4.14.2): a stolen copy is good for one use at most, and the next use by either
holder ends the family.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ledgerd.identity.application.authenticate_any_client import (
    ClientIdentification,
    IdentifyClient,
)
from ledgerd.identity.application.ports import AccessTokenMinter, RefreshTokenMaker
from ledgerd.identity.application.token_response import TokenResponse
from ledgerd.identity.domain.errors import IdentityErrorCode
from ledgerd.identity.domain.grants import AccessGrant
from ledgerd.identity.domain.refresh_families import RefreshFamily
from ledgerd.identity.domain.repositories import RefreshFamilyRepository
from ledgerd.identity.domain.scopes import Scope, parse_scopes
from ledgerd.kernel.clock import Clock
from ledgerd.kernel.errors import LedgerdError
from ledgerd.kernel.unit_of_work import UnitOfWork, retry_on_conflict


@dataclass(frozen=True, slots=True)
class RefreshRequest:
    client: ClientIdentification
    refresh_token: str = field(repr=False)
    # A narrower scope than the family's may be asked for (RFC 6749 §6); None keeps it.
    scope: str | None = None


class RefreshTokens:
    def __init__(  # noqa: PLR0913 - the ports a refresh touches, each named
        self,
        *,
        identify: IdentifyClient,
        uow: UnitOfWork,
        families: RefreshFamilyRepository,
        access_tokens: AccessTokenMinter,
        refresh_tokens: RefreshTokenMaker,
        clock: Clock,
    ) -> None:
        self._identify, self._uow, self._families = identify, uow, families
        self._access_tokens, self._refresh_tokens, self._clock = (
            access_tokens,
            refresh_tokens,
            clock,
        )

    async def __call__(self, request: RefreshRequest) -> TokenResponse:
        client = await self._identify(request.client)
        requested = None if request.scope is None else parse_scopes(request.scope)
        presented = self._refresh_tokens.digest(request.refresh_token)
        next_token = self._refresh_tokens.new_token()
        next_digest = self._refresh_tokens.digest(next_token)
        family, grant = await retry_on_conflict(
            lambda: self._rotate(client.client_id, presented, next_digest, requested)
        )
        access = self._access_tokens.issue(grant.principal(family.subject), family.family_id)
        return TokenResponse(access.token, access.expires_at, grant.scopes, next_token)

    async def _rotate(
        self,
        client_id: str,
        presented: str,
        next_digest: str,
        requested: frozenset[Scope] | None,
    ) -> tuple[RefreshFamily, AccessGrant]:
        async with self._uow.begin() as tx:
            family = await self._families.find_by_token_digest(presented)
            # Another client's token is refused as if unknown: it proves nothing about theft
            # from its own family's holder, and must not let one client end another's family.
            if family is None or family.client_id != client_id:
                raise _invalid_grant("unknown")
            redemption = family.redeem(presented, next_digest, self._clock.now())
            if redemption.refusal is not None:
                if redemption.family.generation != family.generation:
                    await self._families.update(
                        redemption.family, read_generation=family.generation
                    )
                    await tx.commit()
                raise _invalid_grant(redemption.refusal)
            grant = family.grant.narrowed_to(requested)
            await self._families.update(redemption.family, read_generation=family.generation)
            await tx.commit()
            return redemption.family, grant


def _invalid_grant(reason: str) -> LedgerdError:
    return LedgerdError(
        IdentityErrorCode.INVALID_GRANT,
        "the refresh token is invalid, expired, spent or revoked",
        {"reason": reason},
    )
