from __future__ import annotations

import pytest

from ledgerd.identity.application.authenticate_any_client import ClientIdentification
from ledgerd.identity.application.exchange_authorization_code import CodeExchangeRequest
from ledgerd.identity.application.revoke_token import RevocationRequest
from ledgerd.identity.application.token_response import TokenResponse
from ledgerd.identity.domain.errors import IdentityErrorCode
from ledgerd.identity.domain.refresh_families import RevocationCause
from ledgerd.kernel.errors import LedgerdError
from tests.unit.identity.oauth_world import (
    SPA,
    SPA_REDIRECT,
    SVC,
    SVC_REDIRECT,
    VERIFIER,
    OAuthWorld,
)


async def _pair(world: OAuthWorld) -> tuple[TokenResponse, str]:
    code = await world.code_for()
    pair = await world.use_cases.exchange_code(
        CodeExchangeRequest(SVC, code, SVC_REDIRECT, VERIFIER)
    )
    family_id = world.verifier.verify(pair.access_token).family_id
    assert family_id is not None
    assert pair.refresh_token is not None
    return pair, family_id


async def test_revoking_a_refresh_token_revokes_its_family(world: OAuthWorld) -> None:
    pair, family_id = await _pair(world)
    assert pair.refresh_token is not None

    await world.use_cases.revoke(RevocationRequest(SVC, pair.refresh_token))

    assert await world.family_revoked(family_id)
    assert world.tables.families[family_id].revocation_cause is RevocationCause.REVOKED


async def test_another_clients_token_is_answered_alike_and_left_alone(world: OAuthWorld) -> None:
    code = await world.code_for(world.parameters("spa", SPA_REDIRECT))
    pair = await world.use_cases.exchange_code(
        CodeExchangeRequest(SPA, code, SPA_REDIRECT, VERIFIER)
    )
    assert pair.refresh_token is not None

    await world.use_cases.revoke(RevocationRequest(SVC, pair.refresh_token))

    family_id = world.verifier.verify(pair.access_token).family_id
    assert family_id is not None
    assert not await world.family_revoked(family_id)


@pytest.mark.parametrize("token", ["unknown", "x" * 500])
async def test_an_unknown_token_is_success(world: OAuthWorld, token: str) -> None:
    commits = world.uow.commits
    await world.use_cases.revoke(RevocationRequest(SVC, token))
    assert world.uow.commits == commits


async def test_the_client_must_authenticate(world: OAuthWorld) -> None:
    pair, family_id = await _pair(world)
    assert pair.refresh_token is not None
    with pytest.raises(LedgerdError) as refused:
        await world.use_cases.revoke(
            RevocationRequest(ClientIdentification("svc", "wrong"), pair.refresh_token)
        )
    assert refused.value.code is IdentityErrorCode.INVALID_CLIENT
    assert not await world.family_revoked(family_id)
