"""The authorization-code grant's use cases on fakes: authorize checks, code issue, exchange."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest

from ledgerd.identity.application.authenticate_any_client import ClientIdentification
from ledgerd.identity.application.authenticate_user import UserCredentials
from ledgerd.identity.application.exchange_authorization_code import (
    CodeExchangeRequest,
    ExchangeAuthorizationCode,
)
from ledgerd.identity.application.issue_token_pair import TokenPairRequest
from ledgerd.identity.application.refresh_tokens import RefreshRequest
from ledgerd.identity.application.token_response import TokenResponse
from ledgerd.identity.domain.authorization_codes import CODE_LIFETIME
from ledgerd.identity.domain.errors import IdentityErrorCode
from ledgerd.identity.domain.scopes import Scope
from ledgerd.kernel.errors import LedgerdError
from tests.unit.identity.oauth_world import (
    ALICE_PASSWORD,
    ALICE_THROUGH_CLIENT,
    SPA,
    SPA_REDIRECT,
    SVC,
    SVC_REDIRECT,
    VERIFIER,
    OAuthWorld,
)


def _exchange(
    code: str,
    client: ClientIdentification = SVC,
    redirect_uri: str = SVC_REDIRECT,
    verifier: str = VERIFIER,
) -> CodeExchangeRequest:
    return CodeExchangeRequest(client, code, redirect_uri, verifier)


async def _refused(world: OAuthWorld, request: CodeExchangeRequest) -> LedgerdError:
    with pytest.raises(LedgerdError) as refused:
        await world.use_cases.exchange_code(request)
    return refused.value


async def test_a_code_yields_a_token_pair_for_the_user_with_both_grants(world: OAuthWorld) -> None:
    code = await world.code_for()

    pair = await world.use_cases.exchange_code(_exchange(code))

    verified = world.verifier.verify(pair.access_token)
    assert verified.principal == ALICE_THROUGH_CLIENT.principal("u-alice")
    assert verified.family_id is not None
    assert pair.refresh_token is not None
    assert pair.scopes == frozenset({Scope.LEDGER_READ})


async def test_only_the_code_digest_is_stored(world: OAuthWorld) -> None:
    code = await world.code_for()
    assert code not in world.tables.codes
    assert all(code not in repr(stored) for stored in world.tables.codes.values())


async def test_a_public_client_redeems_without_a_secret(world: OAuthWorld) -> None:
    code = await world.code_for(world.parameters("spa", SPA_REDIRECT))
    pair = await world.use_cases.exchange_code(_exchange(code, SPA, SPA_REDIRECT))
    assert world.verifier.verify(pair.access_token).principal.subject == "u-alice"


@pytest.mark.parametrize(
    "identification",
    [ClientIdentification("svc"), ClientIdentification("svc", "wrong"), ClientIdentification("x")],
)
async def test_a_confidential_client_must_authenticate(
    world: OAuthWorld, identification: ClientIdentification
) -> None:
    code = await world.code_for()
    refused = await _refused(world, _exchange(code, identification))
    assert refused.code is IdentityErrorCode.INVALID_CLIENT
    # The code was not spent by a caller who could not authenticate.
    pair = await world.use_cases.exchange_code(_exchange(code))
    assert world.verifier.verify(pair.access_token).principal.subject == "u-alice"


@pytest.mark.parametrize(
    ("verifier", "redirect_uri"),
    [("w" * 43, SVC_REDIRECT), (VERIFIER, SVC_REDIRECT + "/"), (VERIFIER, SPA_REDIRECT)],
)
async def test_a_wrong_verifier_or_redirect_uri_is_invalid_grant(
    world: OAuthWorld, verifier: str, redirect_uri: str
) -> None:
    code = await world.code_for()
    refused = await _refused(world, _exchange(code, redirect_uri=redirect_uri, verifier=verifier))
    assert refused.code is IdentityErrorCode.INVALID_GRANT
    assert refused.details["reason"] == "mismatch"


async def test_a_code_issued_to_another_client_is_refused(world: OAuthWorld) -> None:
    code = await world.code_for(world.parameters("spa", SPA_REDIRECT))
    refused = await _refused(world, _exchange(code, SVC, SPA_REDIRECT))
    assert refused.details["reason"] == "mismatch"


async def test_a_code_expires_after_sixty_seconds(world: OAuthWorld) -> None:
    code = await world.code_for()
    world.clock.advance(CODE_LIFETIME)
    refused = await _refused(world, _exchange(code))
    assert refused.details["reason"] == "expired"


async def test_an_unknown_code_is_invalid_grant(world: OAuthWorld) -> None:
    refused = await _refused(world, _exchange("not-a-code"))
    assert (refused.code, refused.details["reason"]) == (IdentityErrorCode.INVALID_GRANT, "unknown")


async def test_reusing_a_code_is_refused_and_revokes_the_tokens_it_issued(
    world: OAuthWorld,
) -> None:
    code = await world.code_for()
    pair = await world.use_cases.exchange_code(_exchange(code))
    family_id = world.verifier.verify(pair.access_token).family_id
    assert family_id is not None

    refused = await _refused(world, _exchange(code))

    assert refused.details["reason"] == "reused"
    assert await world.family_revoked(family_id)
    assert pair.refresh_token is not None
    with pytest.raises(LedgerdError) as refresh_refused:
        await world.use_cases.refresh(RefreshRequest(SVC, pair.refresh_token))
    assert refresh_refused.value.details["reason"] == "revoked"


async def test_two_concurrent_redemptions_yield_one_pair_and_no_live_tokens(
    world: OAuthWorld,
) -> None:
    code = await world.code_for()
    results = await asyncio.gather(
        world.use_cases.exchange_code(_exchange(code)),
        world.use_cases.exchange_code(_exchange(code)),
        return_exceptions=True,
    )
    pairs = [result for result in results if not isinstance(result, BaseException)]
    refusals = [result for result in results if isinstance(result, LedgerdError)]
    # One redemption wins the code; the other is a reuse. If the reuse came before the winner
    # linked its family, the winner is refused too (its tokens revoked at once).
    assert len(pairs) + len(refusals) == 2
    assert len(pairs) <= 1
    assert all(refusal.details["reason"] == "reused" for refusal in refusals)
    # Whichever order the steps interleaved in, the pair that was issued is revoked.
    for pair in pairs:
        family_id = world.verifier.verify(pair.access_token).family_id
        assert family_id is not None
        assert await world.family_revoked(family_id)


async def test_a_reuse_between_redemption_and_issue_revokes_the_family_at_once(
    world: OAuthWorld,
) -> None:
    code = await world.code_for()
    issued: list[TokenResponse] = []

    async def issue_while_the_code_is_presented_again(request: TokenPairRequest) -> TokenResponse:
        # The code is redeemed but not yet linked to its family: a second presentation now
        # finds no family to revoke, so it flags the code.
        second = await _refused(world, _exchange(code))
        assert second.details["reason"] == "reused"
        pair = await world.issue_pair(request)
        issued.append(pair)
        return pair

    racing = ExchangeAuthorizationCode(
        identify=world.identify,
        uow=world.uow,
        codes=world.codes,
        families=world.families,
        digests=world.opaque,
        issue_pair=issue_while_the_code_is_presented_again,
        clock=world.clock,
    )
    with pytest.raises(LedgerdError) as refused:
        await racing(_exchange(code))

    assert refused.value.details["reason"] == "reused"
    (pair,) = issued
    family_id = world.verifier.verify(pair.access_token).family_id
    assert family_id is not None
    assert await world.family_revoked(family_id)


class TestAuthorizationRequest:
    async def test_a_registered_redirect_uri_is_required_exactly(self, world: OAuthWorld) -> None:
        for uri in (SVC_REDIRECT + "/", SVC_REDIRECT.upper(), SVC_REDIRECT + "?x=1", SPA_REDIRECT):
            with pytest.raises(LedgerdError) as refused:
                await world.use_cases.check_authorization(world.parameters(redirect_uri=uri))
            assert refused.value.code is IdentityErrorCode.INVALID_REDIRECT_URI

    async def test_an_unknown_client_is_an_invalid_redirect_uri(self, world: OAuthWorld) -> None:
        with pytest.raises(LedgerdError) as refused:
            await world.use_cases.check_authorization(world.parameters(client_id="nobody"))
        assert refused.value.code is IdentityErrorCode.INVALID_REDIRECT_URI

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"response_type": "token"}, "response_type"),
            ({"code_challenge": None}, "code_challenge"),
            ({"code_challenge_method": "plain"}, "code_challenge_method"),
            ({"code_challenge_method": None}, "code_challenge_method"),
            ({"code_challenge": "short"}, "code_challenge"),
        ],
    )
    async def test_pkce_s256_and_response_type_code_are_required(
        self, world: OAuthWorld, change: dict[str, str | None], field: str
    ) -> None:
        parameters = replace(world.parameters(), **change)
        with pytest.raises(LedgerdError) as refused:
            await world.use_cases.check_authorization(parameters)
        assert refused.value.code is IdentityErrorCode.INVALID_REQUEST
        assert refused.value.details["field"] == field

    async def test_a_scope_beyond_the_clients_grant_is_invalid_scope(
        self, world: OAuthWorld
    ) -> None:
        with pytest.raises(LedgerdError) as refused:
            await world.use_cases.check_authorization(world.parameters(scope="ledgers.admin"))
        assert refused.value.code is IdentityErrorCode.INVALID_SCOPE

    async def test_a_scope_the_user_lacks_is_left_out_and_none_shared_is_refused(
        self, world: OAuthWorld
    ) -> None:
        code = await world.code_for(world.parameters(scope="ledger.read transfers.write"))
        pair = await world.use_cases.exchange_code(_exchange(code))
        assert pair.scopes == frozenset({Scope.LEDGER_READ})
        with pytest.raises(LedgerdError) as refused:
            await world.code_for(world.parameters(scope="transfers.write"))
        assert refused.value.code is IdentityErrorCode.INVALID_SCOPE


class TestSignIn:
    @pytest.mark.parametrize(
        ("username", "password"),
        [("alice", "wrong"), ("nobody", ALICE_PASSWORD), ("bob", "bob-pw")],
    )
    async def test_every_failed_sign_in_is_access_denied(
        self, world: OAuthWorld, username: str, password: str
    ) -> None:
        with pytest.raises(LedgerdError) as refused:
            await world.use_cases.authenticate_user(UserCredentials(username, password))
        assert refused.value.code is IdentityErrorCode.ACCESS_DENIED
        assert refused.value.message == "wrong username or password"


async def test_a_family_started_by_a_code_keeps_the_refresh_policy(world: OAuthWorld) -> None:
    code = await world.code_for()
    pair = await world.use_cases.exchange_code(_exchange(code))
    world.clock.advance(timedelta(days=8))
    assert pair.refresh_token is not None
    with pytest.raises(LedgerdError) as refused:
        await world.use_cases.refresh(RefreshRequest(SVC, pair.refresh_token))
    assert refused.value.details["reason"] == "idle"
