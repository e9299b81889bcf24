from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from ledgerd.identity.domain.authorization_codes import (
    CODE_LIFETIME,
    AuthorizationCode,
    CodeRefusal,
    s256_challenge,
    verifier_matches,
)
from ledgerd.identity.domain.grants import AccessGrant
from ledgerd.identity.domain.scopes import Scope

NOW = datetime(2024, 1, 1, tzinfo=UTC)
VERIFIER = "a" * 43
GRANT = AccessGrant(frozenset({Scope.LEDGER_READ}), frozenset({"main"}))


def _code(challenge: str = s256_challenge(VERIFIER)) -> AuthorizationCode:
    return AuthorizationCode(
        code_digest="d1",
        client_id="svc",
        redirect_uri="https://app.test/cb",
        code_challenge=challenge,
        subject="u1",
        grant=GRANT,
        issued_at=NOW,
        expires_at=NOW + CODE_LIFETIME,
    )


def test_s256_is_the_rfc_7636_appendix_b_example() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert s256_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert verifier_matches(verifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")


@pytest.mark.parametrize("verifier", ["a" * 42, "a" * 129, "a" * 42 + "é", "a" * 42 + "+"])
def test_a_malformed_verifier_never_matches_even_its_own_digest(verifier: str) -> None:
    digest = hashlib.sha256(verifier.encode()).digest()
    own_challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert not verifier_matches(verifier, own_challenge)


def test_a_code_needs_an_s256_challenge() -> None:
    with pytest.raises(ValueError, match="S256"):
        _code(challenge="a" * 50)  # a plain challenge of 50 characters is no S256 one


def test_a_bound_redemption_is_accepted_once_and_a_second_is_reuse() -> None:
    first = _code().redeem(
        client_id="svc", redirect_uri="https://app.test/cb", verifier=VERIFIER, now=NOW
    )
    assert first.accepted
    assert first.code.redeemed_at == NOW

    again = first.code.redeem(
        client_id="svc", redirect_uri="https://app.test/cb", verifier=VERIFIER, now=NOW
    )
    assert again.refusal is CodeRefusal.REUSED
    assert again.code.reuse_detected_at == NOW


@pytest.mark.parametrize(
    ("client_id", "redirect_uri", "verifier"),
    [
        ("other", "https://app.test/cb", VERIFIER),
        ("svc", "https://app.test/cb/", VERIFIER),
        ("svc", "https://app.test/cb", "b" * 43),
    ],
)
def test_a_mismatched_redemption_is_refused_and_does_not_spend_the_code(
    client_id: str, redirect_uri: str, verifier: str
) -> None:
    code = _code()
    refused = code.redeem(
        client_id=client_id, redirect_uri=redirect_uri, verifier=verifier, now=NOW
    )
    assert refused.refusal is CodeRefusal.MISMATCH
    assert refused.code == code


def test_a_code_expires_after_its_lifetime() -> None:
    assert timedelta(seconds=60) == CODE_LIFETIME
    late = _code().redeem(
        client_id="svc",
        redirect_uri="https://app.test/cb",
        verifier=VERIFIER,
        now=NOW + CODE_LIFETIME,
    )
    assert late.refusal is CodeRefusal.EXPIRED
