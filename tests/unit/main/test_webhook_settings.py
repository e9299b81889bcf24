"""The webhooks' settings, taken or refused naming the variable.

The networks deliveries may reach (parsed into their address policy), the attempts' retention,
the CA bundle https deliveries trust besides the public roots.
"""

from __future__ import annotations

import ipaddress
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from ledgerd.main.contexts.webhooks import address_policy, trusted_cas
from ledgerd.main.settings import Settings
from ledgerd.main.settings_errors import load_settings
from ledgerd.platform.tls.certificate_files import CertificateFileError
from ledgerd.platform.tls.dev_ca import new_ca


def test_by_default_no_network_is_allowed_beyond_public_addresses() -> None:
    policy = address_policy(Settings())
    assert policy.allowed_networks == ()
    assert not policy.allows(ipaddress.ip_address("127.0.0.1"))


def test_the_networks_given_are_allowed() -> None:
    policy = address_policy(Settings(webhooks_allowed_networks="127.0.0.0/8, fd00::/8"))
    assert policy.allowed_networks == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("fd00::/8"),
    )


def test_a_bad_cidr_is_refused_naming_the_setting_and_the_entry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ValidationError, match=r"'10\.0\.0\.0/40' is not a network"):
        Settings(webhooks_allowed_networks="127.0.0.0/8,10.0.0.0/40")
    monkeypatch.setenv("LEDGERD_WEBHOOKS_ALLOWED_NETWORKS", "127.0.0.0/8,intranet")
    problems = load_settings()
    assert isinstance(problems, list)
    expected = (
        "error: LEDGERD_WEBHOOKS_ALLOWED_NETWORKS='127.0.0.0/8,intranet': 'intranet' is not a "
        "network in CIDR notation (e.g. 10.0.0.0/8, fd00::/8): 'intranet' does not appear to "
        "be an IPv4 or IPv6 network"
    )
    assert problems == [expected]


def test_attempts_are_kept_thirty_days_unless_told_and_zero_keeps_them_for_ever(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().webhooks_attempts_retention_days == 30
    monkeypatch.setenv("LEDGERD_WEBHOOKS_ATTEMPTS_RETENTION_DAYS", "0")
    loaded = load_settings()
    assert isinstance(loaded, Settings)
    assert loaded.webhooks_attempts_retention_days == 0
    monkeypatch.setenv("LEDGERD_WEBHOOKS_ATTEMPTS_RETENTION_DAYS", "36500")
    loaded = load_settings()
    assert isinstance(loaded, Settings)
    assert loaded.webhooks_attempts_retention_days == 36_500


@pytest.mark.parametrize("days", ["-1", "36501", "a month"])
def test_a_retention_out_of_bounds_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, days: str
) -> None:
    monkeypatch.setenv("LEDGERD_WEBHOOKS_ATTEMPTS_RETENTION_DAYS", days)
    problems = load_settings()
    assert isinstance(problems, list)
    assert len(problems) == 1
    assert problems[0].startswith(f"error: LEDGERD_WEBHOOKS_ATTEMPTS_RETENTION_DAYS={days!r}: ")


# --- LEDGERD_WEBHOOKS_CA_FILE: a PEM bundle https deliveries trust besides the public roots ---


def _ca_pem() -> bytes:
    made = new_ca("internal CA", now=datetime.now(UTC), lifetime=timedelta(hours=1))
    return made.certificate_pem()


def test_by_default_no_ca_is_added_and_an_empty_value_is_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().webhooks_ca_file is None
    assert trusted_cas(Settings()) is None
    monkeypatch.setenv("LEDGERD_WEBHOOKS_CA_FILE", "")  # a template's blank: none, not "."
    loaded = load_settings()
    assert isinstance(loaded, Settings)
    assert loaded.webhooks_ca_file is None


def test_a_pem_bundle_is_taken_and_its_certificates_given_to_the_sender(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bundle = tmp_path / "internal-ca.pem"
    # As bundles are written: comments (not always ASCII), even a key left in: skipped.
    key = new_ca("internal CA", now=datetime.now(UTC), lifetime=timedelta(hours=1)).key_pem()
    bundle.write_bytes("# Émis par l'équipe réseau\n".encode() + key + _ca_pem() + _ca_pem())
    monkeypatch.setenv("LEDGERD_WEBHOOKS_CA_FILE", str(bundle))
    loaded = load_settings()
    assert isinstance(loaded, Settings)
    assert loaded.webhooks_ca_file == bundle
    assert trusted_cas(loaded) == bundle.read_bytes()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "no such file or directory"),
        (b"", "no PEM certificate in it"),
        (
            b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
            "no PEM certificate in it",
        ),
        ("key", "no PEM certificate in it"),
        ("directory", "is a directory"),
    ],
    ids=["missing", "empty", "damaged", "a-key-only", "a-directory"],
)
def test_a_file_that_is_no_ca_bundle_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, content: bytes | str | None, reason: str
) -> None:
    path = tmp_path / "internal-ca.pem"
    if content == "key":
        key = new_ca("internal CA", now=datetime.now(UTC), lifetime=timedelta(hours=1)).key_pem()
        path.write_bytes(key)
    elif content == "directory":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    monkeypatch.setenv("LEDGERD_WEBHOOKS_CA_FILE", str(path))
    problems = load_settings()
    assert isinstance(problems, list)
    [problem] = problems
    assert problem.startswith(f"error: LEDGERD_WEBHOOKS_CA_FILE={str(path)!r}: {reason}"), problem
    with pytest.raises(ValidationError, match=f"(?i){reason}"):
        Settings(webhooks_ca_file=path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "internal-ca.pem"
    path.write_bytes(_ca_pem())
    path.chmod(0)
    monkeypatch.setenv("LEDGERD_WEBHOOKS_CA_FILE", str(path))
    assert load_settings() == [f"error: LEDGERD_WEBHOOKS_CA_FILE={str(path)!r}: permission denied"]


def test_a_bundle_gone_after_start_up_stops_the_sender_naming_the_setting(
    tmp_path: Path,
) -> None:
    bundle = tmp_path / "internal-ca.pem"
    bundle.write_bytes(_ca_pem())
    settings = Settings(webhooks_ca_file=bundle)
    bundle.unlink()
    # Not a sender trusting less than it was told: the TLS files' error, which stops a command.
    with pytest.raises(CertificateFileError, match=r"^LEDGERD_WEBHOOKS_CA_FILE=.*: No such file"):
        trusted_cas(settings)
