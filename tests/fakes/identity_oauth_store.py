"""In-memory fakes of the ports the OAuth2 endpoints add: users and authorization codes.

``OAuthTables`` extends `IdentityTables` (clients, refresh families) with the two tables, so one
`FakeIdentityUnitOfWork` covers all of them: build it as ``FakeIdentityUnitOfWork(OAuthTables())``.
The code repository's ``update`` is the compare-and-set the SQL one makes on the redeemed
state: of two concurrent redemptions of one code, exactly one succeeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ledgerd.identity.domain.authorization_code_repository import AuthorizationCodeRepository
from ledgerd.identity.domain.authorization_codes import AuthorizationCode
from ledgerd.identity.domain.repositories import UserRepository
from ledgerd.identity.domain.users import User
from ledgerd.kernel.errors import ConcurrencyConflictError
from tests.fakes.identity_store import FakeIdentityUnitOfWork, IdentityTables


@dataclass
class OAuthTables(IdentityTables):
    users: dict[str, User] = field(default_factory=dict)
    # code digest -> code
    codes: dict[str, AuthorizationCode] = field(default_factory=dict)

    def copy(self) -> OAuthTables:
        base = super().copy()
        return OAuthTables(
            base.clients, base.families, base.family_of_digest, dict(self.users), dict(self.codes)
        )


def _tables(uow: FakeIdentityUnitOfWork, *, write: bool) -> OAuthTables:
    tables = uow.writing() if write else uow.reading()
    if not isinstance(tables, OAuthTables):
        msg = "build the unit of work with OAuthTables()"
        raise TypeError(msg)
    return tables


class FakeUserRepository:
    def __init__(self, uow: FakeIdentityUnitOfWork) -> None:
        self._uow = uow

    async def get_by_username(self, username: str) -> User | None:
        users = _tables(self._uow, write=False).users.values()
        return next((user for user in users if user.username == username), None)

    async def add(self, user: User) -> None:
        users = _tables(self._uow, write=True).users
        if user.user_id in users or any(u.username == user.username for u in users.values()):
            msg = f"unique violation: user {user.username}"
            raise ConcurrencyConflictError(msg)
        users[user.user_id] = user


class FakeAuthorizationCodeRepository:
    def __init__(self, uow: FakeIdentityUnitOfWork) -> None:
        self._uow = uow

    async def add(self, code: AuthorizationCode) -> None:
        codes = _tables(self._uow, write=True).codes
        if code.code_digest in codes:
            msg = "unique violation: authorization code"
            raise ConcurrencyConflictError(msg)
        codes[code.code_digest] = code

    async def find_by_digest(self, code_digest: str) -> AuthorizationCode | None:
        return _tables(self._uow, write=False).codes.get(code_digest)

    async def update(self, code: AuthorizationCode, *, was_redeemed: bool) -> None:
        codes = _tables(self._uow, write=True).codes
        if codes[code.code_digest].is_redeemed != was_redeemed:
            msg = "authorization code redeemed concurrently"
            raise ConcurrencyConflictError(msg)
        codes[code.code_digest] = code


def _conforms(
    users: FakeUserRepository, codes: FakeAuthorizationCodeRepository
) -> tuple[UserRepository, AuthorizationCodeRepository]:
    return users, codes
