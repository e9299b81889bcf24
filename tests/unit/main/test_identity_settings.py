"""The identity context's settings: the issuer's default, the tokens' names, the CSRF key."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from ledgerd.main.contexts.identity import csrf_key, key_set_sealing
from ledgerd.main.settings import Settings

KEY = "k" * 32


def test_the_issuer_defaults_to_the_http_listen_address_as_an_http_origin() -> None:
    settings = Settings(http_address="10.0.0.5:8443")
    assert settings.issuer == "http://10.0.0.5:8443"
    assert Settings(token_issuer="https://ledger.example").issuer == "https://ledger.example"


def test_with_tls_the_issuers_default_is_an_https_origin(tmp_path: Path) -> None:
    settings = Settings(
        http_address="10.0.0.5:8443",
        tls_cert_file=tmp_path / "server.pem",
        tls_key_file=tmp_path / "server.key",
    )
    assert settings.issuer == "https://10.0.0.5:8443"
    assert Settings().token_audience == "ledgerd"
    assert Settings().access_token_lifetime_seconds == 900


@pytest.mark.parametrize(
    "issuer", ["https://ledger.example/", "https://ledger.example/auth", "ledger.example"]
)
def test_an_issuer_that_is_no_origin_is_refused(issuer: str) -> None:
    with pytest.raises(ValidationError, match="not an origin"):
        Settings(token_issuer=issuer)


def test_a_set_csrf_key_is_used_and_never_shown() -> None:
    settings = Settings(csrf_key=SecretStr(KEY))
    assert csrf_key(settings) == KEY.encode()
    assert KEY not in repr(settings)
    assert KEY not in str(settings.model_dump())


def test_without_a_csrf_key_each_process_makes_its_own_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO):
        first, second = csrf_key(Settings()), csrf_key(Settings())
    assert len(first) == 32
    assert first != second
    assert "LEDGERD_CSRF_KEY is not set" in caplog.text


def test_the_wrapping_keys_become_the_sealing_and_are_never_shown() -> None:
    current, old, older = (base64.b64encode(bytes([n]) * 32).decode() for n in (1, 2, 3))
    settings = Settings(
        signing_keys_secret=SecretStr(current),
        signing_keys_secret_previous=SecretStr(f"{old},{older}"),
    )

    sealing = key_set_sealing(settings)

    assert sealing.current is not None
    assert sealing.current.secret == bytes([1]) * 32
    assert [key.secret for key in sealing.previous] == [bytes([2]) * 32, bytes([3]) * 32]
    for key in (current, old, older):
        assert key not in repr(settings)
        assert key not in repr(sealing)
    assert not key_set_sealing(Settings()).seals


def test_the_current_wrapping_key_is_one_key_of_32_bytes() -> None:
    one = base64.b64encode(bytes(32)).decode()
    with pytest.raises(ValidationError, match="one key only"):
        Settings(signing_keys_secret=SecretStr(f"{one},{one}"))
    with pytest.raises(ValidationError, match="32 random bytes in base64"):
        Settings(signing_keys_secret=SecretStr(one[:20]))
    # A reference is checked for its form here, and its value once resolved.
    assert Settings(signing_keys_secret=SecretStr("secret://env/KEY")).signing_keys_secret
