"""An access token and the first refresh token of a new family, for an approved grant.

The last step of the authorization-code grant: once `ExchangeAuthorizationCode` has redeemed the
code (checked its client, redirect URI and PKCE verifier), it calls this with the grant the
user approved.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledgerd.identity.application.ports import AccessTokenMinter, RefreshTokenMaker
from ledgerd.identity.application.token_response import TokenResponse
from ledgerd.identity.domain.grants import AccessGrant
from ledgerd.identity.domain.refresh_families import RefreshPolicy, start_family
from ledgerd.identity.domain.repositories import RefreshFamilyRepository
from ledgerd.kernel.clock import Clock
from ledgerd.kernel.ids import IdGenerator
from ledgerd.kernel.unit_of_work import UnitOfWork


@dataclass(frozen=True, slots=True)
class TokenPairRequest:
    client_id: str
    # Whom the tokens act for: the user who approved, or the client itself.
    subject: str
    grant: AccessGrant


class IssueTokenPair:
    def __init__(  # noqa: PLR0913 - the ports a new family touches, each named
        self,
        *,
        uow: UnitOfWork,
        families: RefreshFamilyRepository,
        access_tokens: AccessTokenMinter,
        refresh_tokens: RefreshTokenMaker,
        policy: RefreshPolicy,
        clock: Clock,
        new_id: IdGenerator,
    ) -> None:
        self._uow, self._families = uow, families
        self._access_tokens, self._refresh_tokens = access_tokens, refresh_tokens
        self._policy, self._clock, self._new_id = policy, clock, new_id

    async def __call__(self, request: TokenPairRequest) -> TokenResponse:
        refresh_token = self._refresh_tokens.new_token()
        family = start_family(
            family_id=self._new_id(),
            client_id=request.client_id,
            subject=request.subject,
            grant=request.grant,
            policy=self._policy,
            first_digest=self._refresh_tokens.digest(refresh_token),
            now=self._clock.now(),
        )
        async with self._uow.begin() as tx:
            await self._families.add(family)
            await tx.commit()
        principal = request.grant.principal(request.subject)
        access = self._access_tokens.issue(principal, family.family_id)
        return TokenResponse(access.token, access.expires_at, request.grant.scopes, refresh_token)
