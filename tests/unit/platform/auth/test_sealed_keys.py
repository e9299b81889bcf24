"""The stored key set sealed with AES-256-GCM under a wrapping key: what opens, what is refused."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import timedelta

import pytest

from ledgerd.platform.auth.keys import KeySetError, SigningKeySet
from ledgerd.platform.auth.sealed_keys import KeySetSealing, SealedKeySetError
from ledgerd.platform.auth.wrapping_keys import WrappingKey, wrapping_keys
from tests.fakes.clock import ManualClock


def _wrapping_key() -> WrappingKey:
    return WrappingKey(secrets.token_bytes(32))


def _private_parts(key_set: SigningKeySet) -> list[str]:
    return [str(key.jwk.as_dict(private=True)["d"]) for key in key_set.keys]


@pytest.fixture
def key_set() -> SigningKeySet:
    clock = ManualClock()
    return SigningKeySet.generate(clock.now()).rotate(clock.now(), timedelta(minutes=15))


def test_a_sealed_set_opens_to_the_same_set_and_shows_no_private_key(
    key_set: SigningKeySet,
) -> None:
    sealing = KeySetSealing(current=_wrapping_key())

    sealed = sealing.seal(key_set)

    assert sealing.open(sealed).to_json() == key_set.to_json()
    assert '"d"' not in sealed
    for private in _private_parts(key_set):
        assert private not in sealed
    envelope = json.loads(sealed)
    assert sealing.current is not None
    assert envelope["format"] == 2
    assert envelope["wrapped_by"] == sealing.current.fingerprint
    assert base64.urlsafe_b64encode(sealing.current.secret).decode().rstrip("=") not in sealed


def test_each_write_takes_a_fresh_nonce(key_set: SigningKeySet) -> None:
    sealing = KeySetSealing(current=_wrapping_key())

    first, second = json.loads(sealing.seal(key_set)), json.loads(sealing.seal(key_set))

    assert first["nonce"] != second["nonce"]
    assert first["sealed"] != second["sealed"]


def test_a_byte_changed_anywhere_in_the_envelope_is_refused(key_set: SigningKeySet) -> None:
    sealing = KeySetSealing(current=_wrapping_key())
    sealed = sealing.seal(key_set).encode()

    for index in range(len(sealed)):
        tampered = bytearray(sealed)
        tampered[index] ^= 0x01
        with pytest.raises(KeySetError):
            sealing.open(tampered.decode(errors="replace"))


def test_a_blob_relabelled_with_another_keys_fingerprint_is_refused(
    key_set: SigningKeySet,
) -> None:
    # Both keys are held: the label picks the key, and the associated data binds the label.
    current, other = _wrapping_key(), _wrapping_key()
    sealing = KeySetSealing(current=current, previous=(other,))
    envelope = json.loads(sealing.seal(key_set))
    envelope["wrapped_by"] = other.fingerprint

    with pytest.raises(SealedKeySetError, match="integrity check"):
        sealing.open(json.dumps(envelope))


def test_the_wrong_key_or_none_is_refused_naming_fingerprints_only(
    key_set: SigningKeySet,
) -> None:
    right, wrong = _wrapping_key(), _wrapping_key()
    sealed = KeySetSealing(current=right).seal(key_set)

    with pytest.raises(SealedKeySetError) as refused:
        KeySetSealing(current=wrong).open(sealed)
    assert right.fingerprint in str(refused.value)
    assert wrong.fingerprint in str(refused.value)
    with pytest.raises(SealedKeySetError, match="no wrapping key is set"):
        KeySetSealing().open(sealed)


def test_a_previous_key_opens_and_the_next_write_seals_under_the_current(
    key_set: SigningKeySet,
) -> None:
    old, new = _wrapping_key(), _wrapping_key()
    under_old = KeySetSealing(current=old).seal(key_set)
    rotated = KeySetSealing(current=new, previous=(old,))

    assert rotated.open(under_old).to_json() == key_set.to_json()
    assert rotated.needs_resealing(under_old)
    under_new = rotated.seal(rotated.open(under_old))
    assert not rotated.needs_resealing(under_new)
    assert json.loads(under_new)["wrapped_by"] == new.fingerprint
    # The old key alone no longer opens it.
    with pytest.raises(SealedKeySetError):
        KeySetSealing(current=old).open(under_new)


def test_a_plain_set_is_read_with_a_key_set_and_is_due_for_sealing(
    key_set: SigningKeySet,
) -> None:
    sealing = KeySetSealing(current=_wrapping_key())
    plain = KeySetSealing().seal(key_set)

    assert plain == key_set.to_json()
    assert sealing.open(plain).to_json() == plain
    assert sealing.needs_resealing(plain)
    assert KeySetSealing().needs_resealing(sealing.seal(key_set))


def test_wrapping_keys_are_read_from_either_base64_alphabet_and_checked() -> None:
    raw = bytes(range(200, 232))  # bytes whose base64 has "+" and "/" (or "-" and "_")
    standard, urlsafe = base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()
    assert standard != urlsafe

    (one,) = wrapping_keys(standard)
    (same,) = wrapping_keys(urlsafe.rstrip("="))
    assert one.secret == same.secret == raw
    assert len(wrapping_keys(f"{standard}, {base64.b64encode(raw[::-1]).decode()}")) == 2
    assert raw.hex() not in repr(one)
    assert standard not in repr(one)
    for bad in (base64.b64encode(raw[:16]).decode(), "not base64!", ""):
        with pytest.raises(ValueError, match="32 random bytes in base64") as refused:
            wrapping_keys(bad)
        assert not bad or bad not in str(refused.value)
