"""The cache of verified access tokens: what it may skip, and what it never may.

Real tokens, a real verifier, a manual clock. A hit is visible as the very object the first
verification returned; a fresh verification builds a new one.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from ledgerd.kernel.errors import ErrorCode, LedgerdError
from ledgerd.kernel.principal import Principal, current_principal
from ledgerd.platform.api.authentication import Authentication
from ledgerd.platform.api.pipeline import GRPC, CallInfo
from ledgerd.platform.api.verified_tokens import CachedTokenVerifier
from ledgerd.platform.auth.access_tokens import AccessTokenRejectedError, RejectionReason
from ledgerd.platform.auth.keys import SigningKeySet
from ledgerd.v1 import ledger_pb2 as pb
from tests.unit.platform.api.test_authentication import (
    ACCESS,
    GET_LEDGER,
    SERVICE,
    FakeLiveGrants,
    FakeRevocations,
)
from tests.unit.platform.auth.conftest import LIFETIME, TokenBench, token_bench

PRINCIPAL = Principal("client-1", frozenset({"ledger.read"}), frozenset({"a"}))
TTL_S = 30.0


@pytest.fixture
def bench() -> TokenBench:
    return token_bench()


def _cache(
    bench: TokenBench, *, ttl_s: float = TTL_S, max_entries: int = 100
) -> CachedTokenVerifier:
    return CachedTokenVerifier(
        bench.verifier, bench.ring, bench.clock, ttl_s=ttl_s, max_entries=max_entries
    )


def _token(bench: TokenBench, family: str | None = None) -> str:
    return bench.issuer.issue(PRINCIPAL, family).token


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    # One character of the payload changed: still base64url, still the same length.
    changed = payload[:10] + ("A" if payload[10] != "A" else "B") + payload[11:]
    return f"{header}.{changed}.{signature}"


def test_a_verified_token_is_answered_from_the_cache(bench: TokenBench) -> None:
    cache, token = _cache(bench), _token(bench)
    first = cache.verify(token)
    assert cache.verify(token) is first
    assert first.principal == PRINCIPAL


def test_a_tampered_token_never_hits_the_cache(bench: TokenBench) -> None:
    cache, token = _cache(bench), _token(bench)
    cache.verify(token)
    for _ in range(2):  # refused each time, and never remembered
        with pytest.raises(AccessTokenRejectedError):
            cache.verify(_tampered(token))
    assert len(cache) == 1


def test_an_expired_cached_token_is_refused(bench: TokenBench) -> None:
    cache = _cache(bench, ttl_s=300)
    token = _token(bench)
    cache.verify(token)
    bench.clock.advance(LIFETIME + timedelta(minutes=5))
    with pytest.raises(AccessTokenRejectedError) as refused:
        cache.verify(token)
    assert refused.value.reason == RejectionReason.EXPIRED
    assert len(cache) == 0


def test_an_entry_is_verified_afresh_after_its_ttl(bench: TokenBench) -> None:
    cache, token = _cache(bench), _token(bench)
    first = cache.verify(token)
    bench.clock.advance(timedelta(seconds=TTL_S - 1))
    assert cache.verify(token) is first
    bench.clock.advance(timedelta(seconds=2))
    again = cache.verify(token)
    assert again is not first
    assert again == first


def test_a_key_dropped_from_the_key_set_stops_its_cached_tokens(bench: TokenBench) -> None:
    cache, token = _cache(bench), _token(bench)
    cache.verify(token)
    bench.ring.replace(SigningKeySet.generate(bench.clock.now()))  # the token's key is gone
    with pytest.raises(AccessTokenRejectedError) as refused:
        cache.verify(token)
    assert refused.value.reason == RejectionReason.UNKNOWN_KEY


def test_a_rotation_keeps_the_retired_keys_cached_tokens_through_the_overlap(
    bench: TokenBench,
) -> None:
    cache = _cache(bench, ttl_s=300)
    token = _token(bench)
    first = cache.verify(token)
    bench.rotate()  # the token's key retired, still verifiable until its tokens expire
    bench.clock.advance(timedelta(minutes=1))
    assert cache.verify(token) is first


def test_the_cache_holds_at_most_max_entries_oldest_out_first(bench: TokenBench) -> None:
    cache = _cache(bench, max_entries=3)
    tokens = [_token(bench) for _ in range(5)]
    answers = [cache.verify(token) for token in tokens]
    assert len(cache) == 3
    assert cache.verify(tokens[-1]) is answers[-1]  # kept
    assert cache.verify(tokens[0]) is not answers[0]  # evicted: verified afresh
    assert len(cache) == 3


def test_bounds_must_be_positive(bench: TokenBench) -> None:
    with pytest.raises(ValueError, match="positive TTL"):
        _cache(bench, ttl_s=0)
    with pytest.raises(ValueError, match="one entry"):
        _cache(bench, max_entries=0)


def _hidden(ledger_id: str) -> Exception:
    return LedgerdError(ErrorCode.VALIDATION_FAILED, f"hidden {ledger_id}")


async def _principal_seen() -> Principal | None:
    return current_principal()


def _call(token: str, ledger: str = "a") -> CallInfo:
    return CallInfo(
        method=GET_LEDGER,
        transport=GRPC,
        metadata={"authorization": f"Bearer {token}"},
        request_id="r-1",
        timeout_s=None,
        request=pb.GetLedgerRequest(ledger=ledger),
    )


async def test_revocation_and_ledger_grant_are_checked_on_every_cached_call(
    bench: TokenBench,
) -> None:
    revocations = FakeRevocations()
    concern = Authentication(
        verifier=_cache(bench),
        revocations=revocations,
        live_grants=FakeLiveGrants(),
        access=ACCESS,
        hidden={SERVICE: _hidden},
        public_services=(),
    )
    token = _token(bench, family="fam-1")
    for _ in range(2):
        assert await concern(_call(token), _principal_seen) == PRINCIPAL
    assert revocations.asked == 2
    with pytest.raises(LedgerdError) as hidden:  # a ledger outside the grant, token cached
        await concern(_call(token, ledger="b"), _principal_seen)
    assert hidden.value.message == "hidden b"
    revocations.revoked.add("fam-1")
    with pytest.raises(LedgerdError) as refused:
        await concern(_call(token), _principal_seen)
    assert (refused.value.code, refused.value.message) == (
        ErrorCode.UNAUTHENTICATED,
        "access token refused: revoked",
    )
