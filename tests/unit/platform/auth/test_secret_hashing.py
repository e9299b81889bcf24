from __future__ import annotations

from argon2.profiles import CHEAPEST, RFC_9106_LOW_MEMORY

from ledgerd.platform.auth.secret_hashing import DEFAULT_PARAMETERS, SecretHasher

# Real argon2id at its cheapest cost keeps the tests fast; the default's cost is checked once.
hasher = SecretHasher(CHEAPEST)


def test_the_default_is_argon2id_at_19_mib_two_passes_one_lane() -> None:
    stored = SecretHasher().hash("s3cret")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert SecretHasher(DEFAULT_PARAMETERS).verify(stored, "s3cret")


def test_the_right_secret_verifies_and_a_wrong_one_does_not() -> None:
    stored = hasher.hash("correct horse")
    assert hasher.verify(stored, "correct horse")
    assert not hasher.verify(stored, "correct horse ")
    assert not hasher.verify(stored, "")


def test_a_hash_never_equals_or_contains_its_input_and_is_salted() -> None:
    first, second = hasher.hash("correct horse"), hasher.hash("correct horse")
    assert "correct horse" not in first
    assert first != second
    assert hasher.verify(second, "correct horse")


def test_a_malformed_stored_hash_verifies_nothing() -> None:
    assert not hasher.verify("plain text", "plain text")
    assert not hasher.verify("$argon2id$v=19$m=8,t=1,p=1$broken", "x")


def test_a_hash_made_with_other_parameters_needs_rehashing() -> None:
    stored = hasher.hash("secret")
    assert not hasher.needs_rehash(stored)
    assert SecretHasher(RFC_9106_LOW_MEMORY).needs_rehash(stored)


async def test_check_runs_off_the_loop_and_an_absent_hash_checks_a_decoy() -> None:
    stored = hasher.hash("secret")
    assert await hasher.check(stored, "secret")
    assert not await hasher.check(stored, "guess")
    assert not await hasher.check(None, "secret")
