"""What authentication costs per request: verifying one access token, beside issuing one.

Verification runs on every authenticated call (the pipeline's share of issue 14's 10 % budget);
issuing runs once per token request; the argon2 check runs once per client authentication at
the token endpoint, never per API call.
"""

from __future__ import annotations

from datetime import timedelta

from bench.micro.conftest import Allocations, Benchmark

from ledgerd.kernel.clock import SystemClock
from ledgerd.kernel.principal import Principal
from ledgerd.platform.auth.access_tokens import (
    AccessTokenIssuer,
    AccessTokenVerifier,
    TokenAudience,
)
from ledgerd.platform.auth.keys import KeyRing, SigningKeySet
from ledgerd.platform.auth.secret_hashing import SecretHasher

NAMES = TokenAudience(issuer="https://ledgerd.bench", audience="ledgerd")
PRINCIPAL = Principal(
    "bench-client", frozenset({"ledger.read", "transfers.write"}), frozenset({"bench"})
)


def _issuer_and_verifier() -> tuple[AccessTokenIssuer, AccessTokenVerifier]:
    clock = SystemClock()
    keys = SigningKeySet.generate(clock.now())
    # Two keys, as during a rotation's overlap: the verifier looks the kid up among them.
    ring = KeyRing(keys.rotate(clock.now(), timedelta(minutes=15)))
    issuer = AccessTokenIssuer(ring, NAMES, timedelta(minutes=15), clock)
    return issuer, AccessTokenVerifier(ring, NAMES, clock)


def test_verify_an_access_token(benchmark: Benchmark, allocations: Allocations) -> None:
    issuer, verifier = _issuer_and_verifier()
    token = issuer.issue(PRINCIPAL, family_id="fam-1").token
    allocations(lambda: verifier.verify(token))
    verified = benchmark(verifier.verify, token)
    assert verified.principal == PRINCIPAL


def test_issue_an_access_token(benchmark: Benchmark, allocations: Allocations) -> None:
    issuer, verifier = _issuer_and_verifier()
    allocations(lambda: issuer.issue(PRINCIPAL, family_id="fam-1"))
    issued = benchmark(issuer.issue, PRINCIPAL, "fam-1")
    assert verifier.verify(issued.token).family_id == "fam-1"


def test_verify_a_client_secret(benchmark: Benchmark) -> None:
    hasher = SecretHasher()
    stored = hasher.hash("bench-secret")
    assert benchmark.pedantic(hasher.verify, (stored, "bench-secret"), rounds=10)
