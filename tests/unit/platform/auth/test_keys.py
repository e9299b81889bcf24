from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest
from joserfc.jwk import OKPKey

from ledgerd.platform.auth.keys import ED25519, KeySetError, SigningKeySet
from ledgerd.platform.auth.timing import CLOCK_LEEWAY, MAX_ACCESS_TOKEN_LIFETIME
from tests.fakes.clock import ManualClock

LIFETIME = timedelta(minutes=15)


def test_a_new_set_has_one_current_ed25519_key_named_by_its_thumbprint() -> None:
    keys = SigningKeySet.generate(ManualClock().now())
    (key,) = keys.keys
    assert key.is_current
    assert key.algorithm == ED25519
    assert key.kid == key.jwk.thumbprint()


def test_rotation_retires_the_signer_and_keeps_it_verifiable_for_the_overlap() -> None:
    clock = ManualClock()
    first = SigningKeySet.generate(clock.now())
    rotated = first.rotate(clock.advance(timedelta(days=1)), LIFETIME)

    new, old = rotated.keys
    assert new.is_current
    assert new.kid != first.current.kid
    assert old.kid == first.current.kid
    assert old.retired_at == clock.now()
    assert old.verifiable_until == clock.now() + LIFETIME + CLOCK_LEEWAY
    assert rotated.verification_key(old.kid, clock.now()) == old


def test_a_retired_key_is_dropped_once_its_tokens_have_all_expired() -> None:
    clock = ManualClock()
    first = SigningKeySet.generate(clock.now())
    rotated = first.rotate(clock.now(), LIFETIME)
    old_kid = first.current.kid

    clock.advance(LIFETIME + CLOCK_LEEWAY - timedelta(seconds=1))
    assert rotated.verification_key(old_kid, clock.now()) is not None
    clock.advance(timedelta(seconds=1))
    assert rotated.verification_key(old_kid, clock.now()) is None
    assert [key.kid for key in rotated.pruned(clock.now()).keys] == [rotated.current.kid]
    again = rotated.rotate(clock.now(), LIFETIME)
    assert old_kid not in {key.kid for key in again.keys}
    assert len(again.keys) == 2


def test_rotation_refuses_a_lifetime_beyond_the_planned_maximum() -> None:
    keys = SigningKeySet.generate(ManualClock().now())
    with pytest.raises(KeySetError):
        keys.rotate(ManualClock().now(), MAX_ACCESS_TOKEN_LIFETIME + timedelta(seconds=1))


def test_the_jwks_has_public_members_only_with_kid_alg_and_use() -> None:
    clock = ManualClock()
    keys = SigningKeySet.generate(clock.now()).rotate(clock.now(), LIFETIME)

    jwks = keys.jwks(clock.now())

    assert [jwk["kid"] for jwk in jwks["keys"]] == [key.kid for key in keys.keys]
    for jwk in jwks["keys"]:
        assert "d" not in jwk
        assert set(jwk) == {"kty", "crv", "x", "kid", "alg", "use"}
        assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("OKP", ED25519, ED25519, "sig")
    clock.advance(LIFETIME + CLOCK_LEEWAY)
    assert [jwk["kid"] for jwk in keys.jwks(clock.now())["keys"]] == [keys.current.kid]


def test_the_stored_form_round_trips_with_private_keys_and_instants() -> None:
    clock = ManualClock()
    keys = SigningKeySet.generate(clock.now()).rotate(clock.advance(timedelta(hours=1)), LIFETIME)

    restored = SigningKeySet.from_json(keys.to_json())

    assert restored == keys
    assert all("d" in entry["jwk"] for entry in json.loads(keys.to_json())["keys"])


@pytest.mark.parametrize(
    "text",
    ["", "[]", '{"format": 1}', '{"format": 2, "keys": []}', '{"format": 1, "keys": [{}]}'],
)
def test_an_unreadable_stored_form_is_refused(text: str) -> None:
    with pytest.raises(KeySetError):
        SigningKeySet.from_json(text)


def test_a_refused_stored_form_does_not_echo_the_private_key() -> None:
    stored = json.loads(SigningKeySet.generate(ManualClock().now()).to_json())
    private_part = stored["keys"][0]["jwk"]["d"]
    stored["keys"][0]["created_at"] = 5

    with pytest.raises(KeySetError) as refused:
        SigningKeySet.from_json(json.dumps(stored))

    assert private_part not in str(refused.value)
    assert refused.value.__cause__ is None


def test_a_stored_public_key_cannot_become_a_signer() -> None:
    stored = json.loads(SigningKeySet.generate(ManualClock().now()).to_json())
    del stored["keys"][0]["jwk"]["d"]
    with pytest.raises(KeySetError):
        SigningKeySet.from_json(json.dumps(stored))


def test_a_stored_key_on_another_curve_is_refused() -> None:
    stored = json.loads(SigningKeySet.generate(ManualClock().now()).to_json())
    x25519 = OKPKey.generate_key("X25519", private=True, auto_kid=True)
    stored["keys"][0]["jwk"] = x25519.as_dict(private=True)
    with pytest.raises(KeySetError, match="X25519"):
        SigningKeySet.from_json(json.dumps(stored))


def test_a_set_has_exactly_one_current_key_and_it_comes_first() -> None:
    clock = ManualClock()
    keys = SigningKeySet.generate(clock.now()).rotate(clock.now(), LIFETIME)
    new, old = keys.keys
    with pytest.raises(KeySetError):
        SigningKeySet((old, new))
    with pytest.raises(KeySetError):
        SigningKeySet((new, replace(old, retired_at=None, verifiable_until=None)))
    with pytest.raises(KeySetError):
        SigningKeySet(())
