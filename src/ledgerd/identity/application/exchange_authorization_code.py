"""The authorization-code grant (RFC 6749 §4.1.3) with PKCE S256 (RFC 7636 §4.5 and §4.6).

A code yields tokens once. Presenting it again is refused and revokes the tokens issued from it
(RFC 6749 §4.1.2): the refresh family its redemption started, and through the family's id the
access tokens. Redemption and issuance are separate transactions (issuing a pair is a use case
of its own); the code records the family's first refresh-token digest right after, and a reuse
detected in between flags the code so that this last step revokes the family at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ledgerd.identity.application.authenticate_any_client import (
    ClientIdentification,
    IdentifyClient,
)
from ledgerd.identity.application.issue_token_pair import TokenPairRequest
from ledgerd.identity.application.ports import RefreshTokenMaker
from ledgerd.identity.application.token_response import TokenResponse
from ledgerd.identity.domain.authorization_code_repository import AuthorizationCodeRepository
from ledgerd.identity.domain.authorization_codes import AuthorizationCode, CodeRefusal
from ledgerd.identity.domain.errors import IdentityErrorCode
from ledgerd.identity.domain.refresh_families import RevocationCause
from ledgerd.identity.domain.repositories import RefreshFamilyRepository
from ledgerd.kernel.clock import Clock
from ledgerd.kernel.errors import LedgerdError
from ledgerd.kernel.unit_of_work import UnitOfWork, retry_on_conflict


@dataclass(frozen=True, slots=True)
class CodeExchangeRequest:
    client: ClientIdentification
    code: str = field(repr=False)
    redirect_uri: str
    code_verifier: str = field(repr=False)


class ExchangeAuthorizationCode:
    """Tokens for a code, once; ``issue_pair`` is `IssueTokenPair` (any callable like it)."""

    def __init__(  # noqa: PLR0913 - the ports a redemption touches, each named
        self,
        *,
        identify: IdentifyClient,
        uow: UnitOfWork,
        codes: AuthorizationCodeRepository,
        families: RefreshFamilyRepository,
        digests: RefreshTokenMaker,
        issue_pair: Callable[[TokenPairRequest], Awaitable[TokenResponse]],
        clock: Clock,
    ) -> None:
        self._identify, self._uow, self._codes, self._families = identify, uow, codes, families
        self._digests, self._issue_pair, self._clock = digests, issue_pair, clock

    async def __call__(self, request: CodeExchangeRequest) -> TokenResponse:
        client = await self._identify(request.client)
        digest = self._digests.digest(request.code)
        code = await retry_on_conflict(lambda: self._redeem(digest, client.client_id, request))
        pair = await self._issue_pair(TokenPairRequest(client.client_id, code.subject, code.grant))
        if pair.refresh_token is None:
            msg = "a token pair has a refresh token"
            raise AssertionError(msg)
        refresh_digest = self._digests.digest(pair.refresh_token)
        if await retry_on_conflict(lambda: self._link(digest, refresh_digest)):
            raise _invalid_grant(CodeRefusal.REUSED)
        return pair

    async def _redeem(
        self, digest: str, client_id: str, request: CodeExchangeRequest
    ) -> AuthorizationCode:
        async with self._uow.begin() as tx:
            code = await self._codes.find_by_digest(digest)
            if code is None:
                raise _invalid_grant("unknown")
            redemption = code.redeem(
                client_id=client_id,
                redirect_uri=request.redirect_uri,
                verifier=request.code_verifier,
                now=self._clock.now(),
            )
            if redemption.refusal is CodeRefusal.REUSED:
                if redemption.code != code:
                    await self._codes.update(redemption.code, was_redeemed=True)
                await self._revoke_family(code.issued_refresh_digest)
                await tx.commit()
            if redemption.refusal is not None:
                raise _invalid_grant(redemption.refusal)
            await self._codes.update(redemption.code, was_redeemed=False)
            await tx.commit()
            return redemption.code

    async def _link(self, digest: str, refresh_digest: str) -> bool:
        """Record the family issued from the code; True if the code was reused meanwhile."""
        async with self._uow.begin() as tx:
            code = await self._codes.find_by_digest(digest)
            if code is None:
                msg = "a redeemed code disappeared"
                raise AssertionError(msg)
            await self._codes.update(
                code.with_issued_refresh_digest(refresh_digest), was_redeemed=True
            )
            reused = code.reuse_detected_at is not None
            if reused:
                await self._revoke_family(refresh_digest)
            await tx.commit()
            return reused

    async def _revoke_family(self, refresh_digest: str | None) -> None:
        if refresh_digest is None:
            return  # not linked yet: the redemption's last step will see the flag
        family = await self._families.find_by_token_digest(refresh_digest)
        if family is None or family.is_revoked:
            return
        revoked = family.revoke(self._clock.now(), RevocationCause.REUSE_DETECTED)
        await self._families.update(revoked, read_generation=family.generation)


def _invalid_grant(reason: str) -> LedgerdError:
    return LedgerdError(
        IdentityErrorCode.INVALID_GRANT,
        "the authorization code is invalid, expired, already used, or was issued for another "
        "client, redirect URI or code verifier",
        {"reason": reason},
    )
