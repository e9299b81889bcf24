"""A key ring, an issuer and a verifier on a manual clock, as one test bench."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest

from ledgerd.platform.auth.access_tokens import (
    AccessTokenIssuer,
    AccessTokenVerifier,
    TokenAudience,
)
from ledgerd.platform.auth.keys import KeyRing, SigningKeySet
from tests.fakes.clock import ManualClock

NAMES = TokenAudience(issuer="https://ledgerd.test", audience="ledgerd")
LIFETIME = timedelta(minutes=15)


@dataclass
class TokenBench:
    clock: ManualClock
    ring: KeyRing
    issuer: AccessTokenIssuer
    verifier: AccessTokenVerifier

    def rotate(self) -> None:
        self.ring.replace(self.ring.key_set.rotate(self.clock.now(), LIFETIME))


def token_bench() -> TokenBench:
    clock = ManualClock()
    ring = KeyRing(SigningKeySet.generate(clock.now()))
    return TokenBench(
        clock,
        ring,
        AccessTokenIssuer(ring, NAMES, LIFETIME, clock),
        AccessTokenVerifier(ring, NAMES, clock),
    )


@pytest.fixture
def bench() -> TokenBench:
    return token_bench()
