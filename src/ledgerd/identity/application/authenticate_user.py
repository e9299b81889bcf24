"""Sign a user in by username and password, for the authorization endpoint's login form."""

from __future__ import annotations

from dataclasses import dataclass, field

from ledgerd.identity.application.ports import SecretChecker
from ledgerd.identity.domain.errors import IdentityErrorCode
from ledgerd.identity.domain.repositories import UserRepository
from ledgerd.identity.domain.users import User
from ledgerd.kernel.errors import LedgerdError
from ledgerd.kernel.unit_of_work import UnitOfWork


@dataclass(frozen=True, slots=True)
class UserCredentials:
    username: str
    # Kept out of repr: a credentials value must be safe to log by accident.
    password: str = field(repr=False)


class AuthenticateUser:
    """The user, or ACCESS_DENIED whatever went wrong.

    An unknown username, a disabled user and a wrong password answer alike and take alike long
    (an unknown user's password is checked against a decoy hash), so the form never tells
    which usernames exist.
    """

    def __init__(self, uow: UnitOfWork, users: UserRepository, secrets: SecretChecker) -> None:
        self._uow, self._users, self._secrets = uow, users, secrets

    async def __call__(self, credentials: UserCredentials) -> User:
        # The slow hash check runs after the transaction: it must not hold a connection.
        async with self._uow.begin(read_only=True):
            user = await self._users.get_by_username(credentials.username)
        usable = user if user is not None and user.is_active else None
        password_hash = None if usable is None else usable.password_hash
        if not await self._secrets.check(password_hash, credentials.password) or usable is None:
            raise LedgerdError(IdentityErrorCode.ACCESS_DENIED, "wrong username or password")
        return usable
