"""Creating clients and users: what is stored, what is shown once, what is refused."""

from __future__ import annotations

import pytest
from argon2.profiles import CHEAPEST

from ledgerd.identity.application.authenticate_client import AuthenticateClient, ClientCredentials
from ledgerd.identity.application.manage_clients import CreateClient, NewClient
from ledgerd.identity.application.manage_users import CreateUser, NewUser
from ledgerd.identity.domain.clients import ClientKind
from ledgerd.identity.domain.grants import AccessGrant
from ledgerd.identity.domain.scopes import Scope
from ledgerd.kernel.errors import ErrorCode, LedgerdError
from ledgerd.kernel.principal import ALL_LEDGERS
from ledgerd.platform.auth.opaque_tokens import OpaqueTokens
from ledgerd.platform.auth.secret_hashing import SecretHasher
from tests.fakes.clock import ManualClock
from tests.fakes.identity_oauth_store import FakeUserRepository, OAuthTables
from tests.fakes.identity_store import FakeClientRepository, FakeIdentityUnitOfWork
from tests.fakes.ids import SequentialIds

GRANT = AccessGrant(frozenset({Scope.LEDGER_READ}), frozenset({"main"}))
HASHER = SecretHasher(CHEAPEST)


def _create_client() -> tuple[CreateClient, FakeClientRepository, FakeIdentityUnitOfWork]:
    uow = FakeIdentityUnitOfWork(OAuthTables())
    clients = FakeClientRepository(uow)
    create = CreateClient(
        uow=uow,
        clients=clients,
        secrets=OpaqueTokens(),
        hashing=HASHER,
        clock=ManualClock(),
        new_id=SequentialIds("client"),
    )
    return create, clients, uow


async def test_a_confidential_clients_secret_is_shown_once_and_stored_hashed() -> None:
    create, clients, uow = _create_client()

    created = await create(NewClient("payouts", GRANT))

    assert created.client.kind is ClientKind.CONFIDENTIAL
    assert created.secret is not None
    assert created.secret not in repr(created)
    async with uow.begin(read_only=True):
        stored = await clients.get(created.client.client_id)
    assert stored == created.client
    assert stored.secret_hash is not None
    assert created.secret not in stored.secret_hash
    authenticate = AuthenticateClient(uow, clients, HASHER)
    credentials = ClientCredentials(created.client.client_id, created.secret)
    assert (await authenticate(credentials)).client_id == created.client.client_id


@pytest.mark.parametrize(
    ("request_", "complaint"),
    [
        (NewClient(" ", GRANT), "a client's name is 1 to 200 characters"),
        (NewClient("x", AccessGrant(frozenset(), ALL_LEDGERS)), "at least one scope"),
        (NewClient("x", GRANT, public=True), "a public client needs a redirect URI"),
        (NewClient("x", GRANT, redirect_uris=("/callback",)), "not an absolute URI"),
        (NewClient("x", GRANT, redirect_uris=("https://a.test/cb#top",)), "without a fragment"),
    ],
)
async def test_a_client_described_wrong_is_refused_and_nothing_stored(
    request_: NewClient, complaint: str
) -> None:
    create, clients, uow = _create_client()

    with pytest.raises(LedgerdError, match=complaint) as refused:
        await create(request_)

    assert refused.value.code is ErrorCode.VALIDATION_FAILED
    async with uow.begin(read_only=True):
        assert await clients.get("client000001") is None


async def test_a_user_is_stored_with_a_hashed_password_and_a_username_taken_once() -> None:
    uow = FakeIdentityUnitOfWork(OAuthTables())
    users = FakeUserRepository(uow)
    create = CreateUser(
        uow=uow, users=users, hashing=HASHER, clock=ManualClock(), new_id=SequentialIds("u")
    )

    user = await create(NewUser("alice", "long enough", GRANT))

    assert HASHER.verify(user.password_hash, "long enough")
    assert "long enough" not in repr(NewUser("alice", "long enough", GRANT))
    with pytest.raises(LedgerdError, match="exists already"):
        await create(NewUser("alice", "another one", GRANT))
    with pytest.raises(LedgerdError, match="at least 8 characters"):
        await create(NewUser("bob", "short", GRANT))
    with pytest.raises(LedgerdError, match="no surrounding spaces"):
        await create(NewUser(" carol", "long enough", GRANT))
