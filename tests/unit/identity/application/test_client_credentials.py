from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from ledgerd.identity.application.authenticate_client import ClientCredentials
from ledgerd.identity.application.client_credentials import ClientCredentialsRequest
from ledgerd.identity.domain.clients import ClientKind, OAuthClient
from ledgerd.identity.domain.errors import IdentityErrorCode
from ledgerd.identity.domain.scopes import Scope
from ledgerd.kernel.errors import LedgerdError
from tests.unit.identity.application.conftest import SERVICE, SERVICE_GRANT, Identity


async def _refused(identity: Identity, request: ClientCredentialsRequest) -> LedgerdError:
    with pytest.raises(LedgerdError) as refused:
        await identity.client_credentials(request)
    return refused.value


async def test_a_client_gets_a_token_for_itself_with_its_granted_scopes(
    identity: Identity,
) -> None:
    response = await identity.client_credentials(ClientCredentialsRequest(SERVICE))

    verified = identity.verifier.verify(response.access_token)
    assert verified.principal == SERVICE_GRANT.principal("svc")
    assert verified.family_id is None
    assert response.scopes == SERVICE_GRANT.scopes
    assert response.expires_at == identity.clock.now() + timedelta(minutes=15)
    assert response.refresh_token is None


async def test_a_client_may_ask_for_fewer_scopes_than_granted(identity: Identity) -> None:
    response = await identity.client_credentials(
        ClientCredentialsRequest(SERVICE, scope="ledger.read")
    )
    assert response.scopes == {Scope.LEDGER_READ}
    assert identity.verifier.verify(response.access_token).principal.scopes == {"ledger.read"}


async def test_a_scope_beyond_the_grant_is_invalid_scope(identity: Identity) -> None:
    refused = await _refused(identity, ClientCredentialsRequest(SERVICE, scope="ledgers.admin"))
    assert refused.code is IdentityErrorCode.INVALID_SCOPE


async def test_unknown_client_wrong_secret_revoked_and_public_clients_answer_alike(
    identity: Identity,
) -> None:
    public = OAuthClient("spa", "spa", ClientKind.PUBLIC, None, SERVICE_GRANT, identity.clock.now())
    revoked = replace(
        identity.confidential(ClientCredentials("gone", "gone-secret")),
        revoked_at=identity.clock.now(),
    )
    await identity.add_client(public)
    await identity.add_client(revoked)
    attempts = [
        ClientCredentials("nobody", "svc-secret"),
        ClientCredentials("svc", "wrong"),
        ClientCredentials("gone", "gone-secret"),
        ClientCredentials("spa", ""),
    ]

    refusals = [await _refused(identity, ClientCredentialsRequest(c)) for c in attempts]

    # Same code, message and details: nothing tells which client ids exist.
    assert all(refusal == refusals[0] for refusal in refusals)
    assert refusals[0].code is IdentityErrorCode.INVALID_CLIENT
    assert not refusals[0].details


async def test_scopes_are_not_checked_for_an_unauthenticated_caller(identity: Identity) -> None:
    request = ClientCredentialsRequest(ClientCredentials("svc", "wrong"), scope="nonsense")
    assert (await _refused(identity, request)).code is IdentityErrorCode.INVALID_CLIENT


def test_credentials_never_show_their_secret() -> None:
    assert "svc-secret" not in repr(SERVICE)
