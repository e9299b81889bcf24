"""Operators' use case on users: create one, with a password given by the operator."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from ledgerd.identity.application.ports import SecretHashing
from ledgerd.identity.domain.grants import AccessGrant
from ledgerd.identity.domain.repositories import UserRepository
from ledgerd.identity.domain.users import User
from ledgerd.kernel.clock import Clock
from ledgerd.kernel.errors import ErrorCode, LedgerdError
from ledgerd.kernel.ids import IdGenerator
from ledgerd.kernel.unit_of_work import UnitOfWork

MAX_USERNAME_LENGTH = 200
# NIST SP 800-63B's floor for a password a user chooses.
MIN_PASSWORD_LENGTH = 8


@dataclass(frozen=True, slots=True)
class NewUser:
    username: str
    password: str = field(repr=False)
    grant: AccessGrant


class CreateUser:
    def __init__(
        self,
        *,
        uow: UnitOfWork,
        users: UserRepository,
        hashing: SecretHashing,
        clock: Clock,
        new_id: IdGenerator,
    ) -> None:
        self._uow, self._users, self._hashing = uow, users, hashing
        self._clock, self._new_id = clock, new_id

    async def __call__(self, request: NewUser) -> User:
        username = request.username
        if not username or len(username) > MAX_USERNAME_LENGTH or username != username.strip():
            msg = f"a username is 1 to {MAX_USERNAME_LENGTH} characters, no surrounding spaces"
            raise LedgerdError(ErrorCode.VALIDATION_FAILED, msg)
        if len(request.password) < MIN_PASSWORD_LENGTH:
            msg = f"a password has at least {MIN_PASSWORD_LENGTH} characters"
            raise LedgerdError(ErrorCode.VALIDATION_FAILED, msg)
        password_hash = await asyncio.to_thread(self._hashing.hash, request.password)
        user = User(
            user_id=self._new_id(),
            username=username,
            password_hash=password_hash,
            grant=request.grant,
            created_at=self._clock.now(),
        )
        async with self._uow.begin() as tx:
            # Checked in the transaction that adds; a racing twin fails on the unique key.
            if await self._users.get_by_username(username) is not None:
                msg = f"a user named {username!r} exists already"
                raise LedgerdError(ErrorCode.VALIDATION_FAILED, msg)
            await self._users.add(user)
            await tx.commit()
        return user
