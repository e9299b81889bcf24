"""Access tokens: round trip, and each attack on a token that the verifier alone must stop."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st
from joserfc import jwt

from ledgerd.kernel.principal import ALL_LEDGERS, Principal
from ledgerd.platform.auth.access_tokens import (
    AccessTokenRejectedError,
    AccessTokenVerifier,
    RejectionReason,
    TokenAudience,
)
from ledgerd.platform.auth.keys import SigningKey, SigningKeySet
from ledgerd.platform.auth.timing import CLOCK_LEEWAY
from tests.unit.platform.auth.conftest import LIFETIME, NAMES, TokenBench, token_bench

READER = Principal("client-1", frozenset({"ledger.read", "transfers.write"}), frozenset({"main"}))


def _segment(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _json_segment(value: Mapping[str, object]) -> str:
    return _segment(json.dumps(value, separators=(",", ":")).encode())


def _claims(bench: TokenBench, **changes: object) -> dict[str, object]:
    now = int(bench.clock.now().timestamp())
    claims = {
        "iss": NAMES.issuer,
        "sub": "client-1",
        "aud": NAMES.audience,
        "exp": now + 900,
        "iat": now,
        "nbf": now,
        "jti": "j1",
        "scope": "ledgers.admin",
        "ledgers": "*",
    }
    return {**claims, **changes}


def _signed(key: SigningKey, claims: dict[str, object]) -> str:
    """A token signed by ``key`` as the issuer would, with claims the test chooses."""
    header = {"alg": key.algorithm, "kid": key.kid, "typ": "at+jwt"}
    return jwt.encode(header, claims, key.jwk, algorithms=[key.algorithm], default_type=None)


def _rejection(bench: TokenBench, token: str) -> RejectionReason:
    with pytest.raises(AccessTokenRejectedError) as rejected:
        bench.verifier.verify(token)
    if len(token) > 3:  # a shorter text is in any message by chance
        assert token not in str(rejected.value)
        assert token not in repr(rejected.value.args)
    return rejected.value.reason


def test_an_issued_token_verifies_to_its_principal_family_and_expiry(bench: TokenBench) -> None:
    issued = bench.issuer.issue(READER, family_id="fam-1")

    verified = bench.verifier.verify(issued.token)

    assert verified.principal == READER
    assert verified.family_id == "fam-1"
    assert verified.token_id == issued.token_id
    assert verified.expires_at == issued.expires_at == bench.clock.now() + LIFETIME
    assert verified.key_id == bench.ring.key_set.current.kid


def test_the_claims_and_header_are_the_documented_ones(bench: TokenBench) -> None:
    token = bench.issuer.issue(READER).token
    header, payload, _ = token.split(".")

    decoded_header = json.loads(base64.urlsafe_b64decode(header + "=="))
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))

    assert decoded_header == {
        "alg": "Ed25519",
        "kid": bench.ring.key_set.current.kid,
        "typ": "at+jwt",
    }
    assert set(claims) == {"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "scope", "ledgers"}
    assert claims["scope"] == "ledger.read transfers.write"
    assert claims["ledgers"] == ["main"]


def test_every_ledger_travels_as_the_star_marker(bench: TokenBench) -> None:
    admin = Principal("admin", frozenset({"ledgers.admin"}), ALL_LEDGERS)
    token = bench.issuer.issue(admin).token
    assert bench.verifier.verify(token).principal.ledgers is ALL_LEDGERS


def test_alg_none_is_refused(bench: TokenBench) -> None:
    header = {"alg": "none", "kid": bench.ring.key_set.current.kid, "typ": "at+jwt"}
    token = f"{_json_segment(header)}.{_json_segment(_claims(bench))}."
    assert _rejection(bench, token) in {RejectionReason.BAD_SIGNATURE, RejectionReason.MALFORMED}


def test_hs256_keyed_with_the_public_key_is_refused(bench: TokenBench) -> None:
    """Algorithm confusion: the verifier must not use the public key as an HMAC secret."""
    key = bench.ring.key_set.current
    public = key.jwk.public_key
    secrets = [
        public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo),
        public.public_bytes(Encoding.Raw, PublicFormat.Raw),
        json.dumps(key.public_jwk()).encode(),
    ]
    header = _json_segment({"alg": "HS256", "kid": key.kid, "typ": "at+jwt"})
    payload = _json_segment(_claims(bench))
    for secret in secrets:
        mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        token = f"{header}.{payload}.{_segment(mac)}"
        assert _rejection(bench, token) is RejectionReason.BAD_SIGNATURE


def test_an_expired_token_is_refused_once_the_leeway_has_passed(bench: TokenBench) -> None:
    token = bench.issuer.issue(READER).token
    bench.clock.advance(LIFETIME + CLOCK_LEEWAY - timedelta(seconds=1))
    bench.verifier.verify(token)
    bench.clock.advance(timedelta(seconds=1))
    assert _rejection(bench, token) is RejectionReason.EXPIRED


def test_a_token_not_yet_valid_beyond_the_leeway_is_refused(bench: TokenBench) -> None:
    key = bench.ring.key_set.current
    now = int(bench.clock.now().timestamp())
    leeway = int(CLOCK_LEEWAY.total_seconds())
    within = _signed(key, _claims(bench, nbf=now + leeway))
    beyond = _signed(key, _claims(bench, nbf=now + leeway + 1))
    issued_later = _signed(key, _claims(bench, iat=now + leeway + 1))

    assert bench.verifier.verify(within).principal.subject == "client-1"
    assert _rejection(bench, beyond) is RejectionReason.NOT_YET_VALID
    assert _rejection(bench, issued_later) is RejectionReason.NOT_YET_VALID


def test_a_token_for_another_audience_or_from_another_issuer_is_refused(
    bench: TokenBench,
) -> None:
    token = bench.issuer.issue(READER).token
    elsewhere = TokenAudience(NAMES.issuer, "another-service")
    other_issuer = TokenAudience("https://evil.test", NAMES.audience)

    for names, reason in [
        (elsewhere, RejectionReason.WRONG_AUDIENCE),
        (other_issuer, RejectionReason.WRONG_ISSUER),
    ]:
        verifier = AccessTokenVerifier(bench.ring, names, bench.clock)
        with pytest.raises(AccessTokenRejectedError) as rejected:
            verifier.verify(token)
        assert rejected.value.reason is reason


def test_an_audience_list_naming_us_among_others_is_refused(bench: TokenBench) -> None:
    key = bench.ring.key_set.current
    token = _signed(key, _claims(bench, aud=[NAMES.audience, "another-service"]))
    assert _rejection(bench, token) is RejectionReason.WRONG_AUDIENCE


def test_a_tampered_payload_is_refused(bench: TokenBench) -> None:
    header, _, signature = bench.issuer.issue(READER).token.split(".")
    wider = _json_segment(_claims(bench, scope="ledgers.admin", ledgers="*"))
    assert _rejection(bench, f"{header}.{wider}.{signature}") is RejectionReason.BAD_SIGNATURE


def test_a_key_id_the_set_does_not_hold_is_refused(bench: TokenBench) -> None:
    stranger = SigningKeySet.generate(bench.clock.now()).current
    assert _rejection(bench, _signed(stranger, _claims(bench))) is RejectionReason.UNKNOWN_KEY


def test_rotation_keeps_the_old_keys_tokens_valid_during_the_overlap(bench: TokenBench) -> None:
    old_token = bench.issuer.issue(READER).token
    bench.clock.advance(timedelta(minutes=5))
    bench.rotate()
    new_token = bench.issuer.issue(READER).token

    assert bench.verifier.verify(new_token).key_id == bench.ring.key_set.current.kid
    assert bench.verifier.verify(old_token).key_id != bench.ring.key_set.current.kid
    bench.clock.advance(LIFETIME - timedelta(minutes=5))
    bench.verifier.verify(old_token)


def test_a_retired_key_is_refused_after_the_overlap_even_for_a_long_lived_token(
    bench: TokenBench,
) -> None:
    """A token the old key signed with a far ``exp`` (it leaked, say) dies with the key."""
    old_key = bench.ring.key_set.current
    far = int((bench.clock.now() + timedelta(days=365)).timestamp())
    forged = _signed(old_key, _claims(bench, exp=far))
    bench.rotate()
    bench.verifier.verify(forged)

    bench.clock.advance(LIFETIME + CLOCK_LEEWAY)
    assert _rejection(bench, forged) is RejectionReason.UNKNOWN_KEY
    bench.rotate()
    assert old_key.kid not in {key.kid for key in bench.ring.key_set.keys}
    assert _rejection(bench, forged) is RejectionReason.UNKNOWN_KEY


@pytest.mark.parametrize(
    "token",
    [
        "",
        "a.b",
        "a.b.c.d",
        "not base64!.e30.",
        "é.e30.e30",
        "e30.e30." + "A" * 9000,
    ],
)
def test_text_that_is_no_compact_jws_is_malformed(bench: TokenBench, token: str) -> None:
    assert _rejection(bench, token) is RejectionReason.MALFORMED


@pytest.mark.parametrize(
    "header_changes",
    [
        {"typ": "JWT"},
        {"jku": "https://evil.test/jwks.json"},
        {"kid": 7},
        {"kid": None},
    ],
)
def test_a_header_beyond_alg_kid_and_typ_is_malformed(
    bench: TokenBench, header_changes: dict[str, Any]
) -> None:
    key = bench.ring.key_set.current
    header = {"alg": key.algorithm, "kid": key.kid, "typ": "at+jwt", **header_changes}
    header_segment = _json_segment({k: v for k, v in header.items() if v is not None})
    payload = _json_segment(_claims(bench))
    private = key.jwk.private_key
    assert isinstance(private, Ed25519PrivateKey)
    signature = _segment(private.sign(f"{header_segment}.{payload}".encode()))
    token = f"{header_segment}.{payload}.{signature}"
    assert _rejection(bench, token) is RejectionReason.MALFORMED


@pytest.mark.parametrize(
    "changes",
    [{"exp": "soon"}, {"exp": True}, {"scope": ["ledger.read"]}, {"ledgers": "main"}, {"sub": ""}],
)
def test_signed_claims_of_the_wrong_shape_are_malformed(
    bench: TokenBench, changes: dict[str, Any]
) -> None:
    token = _signed(bench.ring.key_set.current, _claims(bench, **changes))
    assert _rejection(bench, token) is RejectionReason.MALFORMED


@functools.cache
def _one_token() -> tuple[TokenBench, str]:
    bench = token_bench()
    return bench, bench.issuer.issue(READER, family_id="fam-1").token


@given(data=st.data())
def test_any_single_character_change_is_rejected(data: st.DataObject) -> None:
    bench, token = _one_token()
    position = data.draw(st.integers(0, len(token) - 1), label="position")
    replacement = data.draw(
        st.characters(codec="utf-8").filter(lambda char: char != token[position]),
        label="replacement",
    )
    changed = token[:position] + replacement + token[position + 1 :]

    with pytest.raises(AccessTokenRejectedError):
        bench.verifier.verify(changed)


@given(data=st.data())
def test_any_single_bit_flip_in_the_last_signature_character_is_rejected(
    data: st.DataObject,
) -> None:
    """Base64's last character has spare bits: the canonical-form check must catch them."""
    bench, token = _one_token()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    replacement = data.draw(st.sampled_from(alphabet).filter(lambda char: char != token[-1]))
    with pytest.raises(AccessTokenRejectedError):
        bench.verifier.verify(token[:-1] + replacement)
