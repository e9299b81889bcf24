"""Hashes of client secrets and user passwords: argon2id through argon2-cffi.

A stored hash is the PHC string (``$argon2id$v=19$m=19456,t=2,p=1$salt$hash``), so it names its
own parameters: raising them later makes `needs_rehash` true for the old hashes, which are
replaced at the next successful login. One hash costs tens of milliseconds of CPU by design, so
the async `check` runs it on a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Final

from argon2 import Parameters, PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# argon2id at OWASP's first recommended setting: m=19 MiB, t=2 passes, p=1 lane, 16-byte salt,
# 32-byte tag: ~24 ms of one core here. RFC 9106's 64 MiB / t=3 / p=4 costs ~190 ms of CPU per
# check on this machine, which would let a flood of wrong secrets (each one a check) take a
# core for every five attempts a second; 19 MiB is still memory-hard enough to make GPU
# guessing of a human password expensive. Client secrets that `ledgerd clients create` makes are
# 256 random bits, beyond guessing at any cost: the setting matters for user passwords.
DEFAULT_PARAMETERS: Final = Parameters(
    type=Type.ID,
    version=19,
    salt_len=16,
    hash_len=32,
    time_cost=2,
    memory_cost=19_456,  # KiB
    parallelism=1,
)


class SecretHasher:
    def __init__(self, parameters: Parameters = DEFAULT_PARAMETERS) -> None:
        self._hasher = PasswordHasher.from_parameters(parameters)
        # What an unknown client's secret is checked against, so that "no such client" takes
        # as long as "wrong secret" and the timing does not tell which client ids exist.
        self._decoy = self._hasher.hash(secrets.token_urlsafe(32))

    def hash(self, secret: str) -> str:
        """A new salted hash of ``secret`` (a different string on each call)."""
        return self._hasher.hash(secret)

    def verify(self, secret_hash: str, secret: str) -> bool:
        """Whether ``secret`` matches; the tag comparison is constant-time (libargon2)."""
        try:
            return self._hasher.verify(secret_hash, secret)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, secret_hash: str) -> bool:
        """Whether ``secret_hash`` was made with other parameters than this hasher's."""
        return self._hasher.check_needs_rehash(secret_hash)

    async def check(self, secret_hash: str | None, secret: str) -> bool:
        """`verify`, off the event loop.

        With no hash (no such client or user) it checks a decoy at the same cost and is False.
        """
        if secret_hash is None:
            await asyncio.to_thread(self.verify, self._decoy, secret)
            return False
        return await asyncio.to_thread(self.verify, secret_hash, secret)
