from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from ledgerd.identity.application.authenticate_any_client import ClientIdentification
from ledgerd.identity.application.issue_token_pair import TokenPairRequest
from ledgerd.identity.application.refresh_tokens import RefreshRequest
from ledgerd.identity.application.token_response import TokenResponse
from ledgerd.identity.domain.errors import IdentityErrorCode
from ledgerd.identity.domain.scopes import Scope
from ledgerd.kernel.errors import LedgerdError
from tests.unit.identity.application.conftest import (
    APP,
    OTHER_ID,
    POLICY,
    SERVICE_GRANT,
    SERVICE_ID,
    Identity,
)


async def _pair(identity: Identity, client_id: str = "svc") -> TokenResponse:
    return await identity.token_pair(TokenPairRequest(client_id, "alice", SERVICE_GRANT))


def _refresh_token(response: TokenResponse) -> str:
    assert response.refresh_token is not None
    return response.refresh_token


async def _refused(identity: Identity, request: RefreshRequest) -> LedgerdError:
    with pytest.raises(LedgerdError) as refused:
        await identity.refresh(request)
    assert refused.value.code is IdentityErrorCode.INVALID_GRANT
    return refused.value


async def _family_revoked(identity: Identity, family_id: str) -> bool:
    async with identity.uow.begin(read_only=True):
        return await identity.families.is_revoked(family_id)


async def test_a_pair_starts_a_family_whose_id_its_access_token_carries(
    identity: Identity,
) -> None:
    pair = await _pair(identity)

    verified = identity.verifier.verify(pair.access_token)
    assert verified.principal == SERVICE_GRANT.principal("alice")
    assert verified.family_id == "fam000001"
    assert not await _family_revoked(identity, "fam000001")


async def test_each_refresh_returns_the_next_token_of_the_same_family(identity: Identity) -> None:
    first = _refresh_token(await _pair(identity))
    identity.clock.advance(timedelta(minutes=10))

    second = await identity.refresh(RefreshRequest(SERVICE_ID, first))
    third = await identity.refresh(RefreshRequest(SERVICE_ID, _refresh_token(second)))

    assert len({first, _refresh_token(second), _refresh_token(third)}) == 3
    verified = identity.verifier.verify(third.access_token)
    assert verified.family_id == "fam000001"
    assert verified.principal == SERVICE_GRANT.principal("alice")


async def test_a_refresh_may_narrow_the_scope(identity: Identity) -> None:
    first = _refresh_token(await _pair(identity))
    narrowed = await identity.refresh(RefreshRequest(SERVICE_ID, first, scope="ledger.read"))
    assert narrowed.scopes == {Scope.LEDGER_READ}
    # The family keeps its grant: the next refresh may ask for all of it again.
    full = await identity.refresh(RefreshRequest(SERVICE_ID, _refresh_token(narrowed)))
    assert full.scopes == SERVICE_GRANT.scopes


async def test_reusing_a_spent_token_revokes_the_whole_family(identity: Identity) -> None:
    first = _refresh_token(await _pair(identity))
    second = _refresh_token(await identity.refresh(RefreshRequest(SERVICE_ID, first)))

    refused = await _refused(identity, RefreshRequest(SERVICE_ID, first))

    assert refused.details == {"reason": "reused"}
    assert await _family_revoked(identity, "fam000001")
    # The newest token, the legitimate holder's or the thief's, is refused from now on.
    later = await _refused(identity, RefreshRequest(SERVICE_ID, second))
    assert later.details == {"reason": "revoked"}


async def test_two_concurrent_uses_of_one_token_make_one_winner(identity: Identity) -> None:
    first = _refresh_token(await _pair(identity))

    outcomes = await asyncio.gather(
        identity.refresh(RefreshRequest(SERVICE_ID, first)),
        identity.refresh(RefreshRequest(SERVICE_ID, first)),
        return_exceptions=True,
    )

    winners = [outcome for outcome in outcomes if isinstance(outcome, TokenResponse)]
    losers = [outcome for outcome in outcomes if isinstance(outcome, LedgerdError)]
    assert len(winners) == 1
    assert len(losers) == 1
    assert losers[0].code is IdentityErrorCode.INVALID_GRANT
    assert await _family_revoked(identity, "fam000001")


async def test_an_idle_family_and_an_old_family_refuse_their_tokens(identity: Identity) -> None:
    idle = _refresh_token(await _pair(identity))
    identity.clock.advance(POLICY.idle_timeout)
    refused = await _refused(identity, RefreshRequest(SERVICE_ID, idle))
    assert refused.details == {"reason": "idle"}

    token = _refresh_token(await _pair(identity))
    for _ in range(4):
        identity.clock.advance(POLICY.idle_timeout - timedelta(hours=1))
        token = _refresh_token(await identity.refresh(RefreshRequest(SERVICE_ID, token)))
    identity.clock.advance(
        POLICY.absolute_lifetime - 4 * (POLICY.idle_timeout - timedelta(hours=1))
    )
    expired = await _refused(identity, RefreshRequest(SERVICE_ID, token))
    assert expired.details == {"reason": "expired"}
    # Running out of time is no theft: the family is not revoked.
    assert not await _family_revoked(identity, "fam000002")


async def test_another_clients_token_is_unknown_and_leaves_the_family_alone(
    identity: Identity,
) -> None:
    token = _refresh_token(await _pair(identity))

    refused = await _refused(identity, RefreshRequest(OTHER_ID, token))

    assert refused.details == {"reason": "unknown"}
    assert not await _family_revoked(identity, "fam000001")
    await identity.refresh(RefreshRequest(SERVICE_ID, token))


async def test_a_token_never_issued_is_unknown(identity: Identity) -> None:
    refused = await _refused(identity, RefreshRequest(SERVICE_ID, "made-up"))
    assert refused.details == {"reason": "unknown"}


async def test_the_store_keeps_digests_never_refresh_tokens(identity: Identity) -> None:
    token = _refresh_token(await _pair(identity))
    stored = repr(identity.uow.tables)
    assert token not in stored
    assert "made-up" not in repr(RefreshRequest(SERVICE_ID, "made-up"))


class TestPublicClient:
    """A public client names itself by client_id; rotation and reuse detection protect it."""

    async def test_it_refreshes_with_its_id_alone_and_gets_a_rotated_token(
        self, identity: Identity
    ) -> None:
        first = _refresh_token(await _pair(identity, "app"))

        second = await identity.refresh(RefreshRequest(APP, first))

        assert _refresh_token(second) != first
        verified = identity.verifier.verify(second.access_token)
        assert verified.family_id == "fam000001"
        assert verified.principal == SERVICE_GRANT.principal("alice")
        # The rotated token is the one that works now.
        await identity.refresh(RefreshRequest(APP, _refresh_token(second)))

    async def test_its_reuse_of_a_spent_token_revokes_the_family(self, identity: Identity) -> None:
        first = _refresh_token(await _pair(identity, "app"))
        second = _refresh_token(await identity.refresh(RefreshRequest(APP, first)))

        reused = await _refused(identity, RefreshRequest(APP, first))

        assert reused.details == {"reason": "reused"}
        assert await _family_revoked(identity, "fam000001")
        later = await _refused(identity, RefreshRequest(APP, second))
        assert later.details == {"reason": "revoked"}

    async def test_a_confidential_clients_family_is_unknown_to_it(self, identity: Identity) -> None:
        token = _refresh_token(await _pair(identity, "svc"))

        refused = await _refused(identity, RefreshRequest(APP, token))

        assert refused.details == {"reason": "unknown"}
        assert not await _family_revoked(identity, "fam000001")
        await identity.refresh(RefreshRequest(SERVICE_ID, token))

    async def test_its_family_is_unknown_to_a_confidential_client(self, identity: Identity) -> None:
        token = _refresh_token(await _pair(identity, "app"))

        refused = await _refused(identity, RefreshRequest(SERVICE_ID, token))

        assert refused.details == {"reason": "unknown"}
        await identity.refresh(RefreshRequest(APP, token))

    async def test_it_cannot_present_a_secret(self, identity: Identity) -> None:
        # A public client has none: a secret sent with its id authenticates nothing.
        token = _refresh_token(await _pair(identity, "app"))
        with pytest.raises(LedgerdError) as refused:
            await identity.refresh(RefreshRequest(ClientIdentification("app", "guess"), token))
        assert refused.value.code is IdentityErrorCode.INVALID_CLIENT


@pytest.mark.parametrize(
    "identification",
    [
        ClientIdentification("svc"),
        ClientIdentification("svc", "wrong-secret"),
        ClientIdentification("nobody"),
    ],
    ids=["no-secret", "wrong-secret", "unknown-id"],
)
async def test_a_confidential_client_must_authenticate_to_refresh(
    identity: Identity, identification: ClientIdentification
) -> None:
    token = _refresh_token(await _pair(identity))

    with pytest.raises(LedgerdError) as refused:
        await identity.refresh(RefreshRequest(identification, token))

    assert refused.value.code is IdentityErrorCode.INVALID_CLIENT
    # Refused before the token was looked at: the family is untouched and its token still good.
    assert not await _family_revoked(identity, "fam000001")
    await identity.refresh(RefreshRequest(SERVICE_ID, token))
