"""After the user signed in: an authorization code for the checked request (RFC 6749 §4.1.2)."""

from __future__ import annotations

from ledgerd.identity.application.authorization_request import AuthorizationRequest
from ledgerd.identity.application.ports import RefreshTokenMaker
from ledgerd.identity.domain.authorization_code_repository import AuthorizationCodeRepository
from ledgerd.identity.domain.authorization_codes import CODE_LIFETIME, AuthorizationCode
from ledgerd.identity.domain.errors import IdentityErrorCode
from ledgerd.identity.domain.grants import AccessGrant
from ledgerd.identity.domain.user_grants import grant_through_client
from ledgerd.identity.domain.users import User
from ledgerd.kernel.clock import Clock
from ledgerd.kernel.errors import LedgerdError
from ledgerd.kernel.unit_of_work import UnitOfWork


class IssueAuthorizationCode:
    def __init__(
        self,
        uow: UnitOfWork,
        codes: AuthorizationCodeRepository,
        random_codes: RefreshTokenMaker,
        clock: Clock,
    ) -> None:
        self._uow, self._codes, self._random_codes, self._clock = uow, codes, random_codes, clock

    async def __call__(self, request: AuthorizationRequest, user: User) -> str:
        """The code to send to the redirect URI; only its digest is stored."""
        grant = grant_through_client(user.grant, request.client.grant)
        if request.scopes is not None:
            # The request was checked against the client's grant; of what it asks, the user
            # may hold less, and gets only that (RFC 6749 §3.3: the response states the scope).
            grant = AccessGrant(grant.scopes & request.scopes, grant.ledgers)
        if not grant.scopes:
            # The user and the client share no scope: a token could do nothing.
            raise LedgerdError(
                IdentityErrorCode.INVALID_SCOPE, "the user holds none of the scopes asked for"
            )
        code = self._random_codes.new_token()
        now = self._clock.now()
        stored = AuthorizationCode(
            code_digest=self._random_codes.digest(code),
            client_id=request.client.client_id,
            redirect_uri=request.redirect_uri,
            code_challenge=request.code_challenge,
            subject=user.user_id,
            grant=grant,
            issued_at=now,
            expires_at=now + CODE_LIFETIME,
        )
        async with self._uow.begin() as tx:
            await self._codes.add(stored)
            await tx.commit()
        return code
