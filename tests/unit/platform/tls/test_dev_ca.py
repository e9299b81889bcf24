"""The development CA's certificates verify as a strict verifier checks them, and only so."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from ledgerd.platform.tls import dev_ca

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _ca(name: str = "test CA") -> dev_ca.Issued:
    return dev_ca.new_ca(name, now=NOW, lifetime=30 * DAY)


def _server(ca: dev_ca.Issued, *, now: datetime = NOW) -> dev_ca.Issued:
    names = dev_ca.Names(("localhost",), ("127.0.0.1",))
    return dev_ca.issue(ca, "server", usage=dev_ca.Usage.SERVER, names=names, now=now, lifetime=DAY)


def _client(ca: dev_ca.Issued, uri: str = "spiffe://ledgerd.test/payouts") -> dev_ca.Issued:
    names = dev_ca.Names(uris=(uri,))
    return dev_ca.issue(
        ca, "payouts", usage=dev_ca.Usage.CLIENT, names=names, now=NOW, lifetime=DAY
    )


def _policy(ca: dev_ca.Issued, at: datetime = NOW + timedelta(hours=1)) -> PolicyBuilder:
    return PolicyBuilder().store(Store([ca.certificate])).time(at)


def test_a_server_certificate_verifies_for_its_names_only() -> None:
    ca = _ca()
    server = _server(ca)
    for name in (
        x509.DNSName("localhost"),
        x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1")),
    ):
        chain = _policy(ca).build_server_verifier(name).verify(server.certificate, [])
        assert chain[-1] == ca.certificate
    with pytest.raises(VerificationError):
        _policy(ca).build_server_verifier(x509.DNSName("ledgerd.example")).verify(
            server.certificate, []
        )


def test_a_client_certificate_names_its_uri_and_is_no_server_certificate() -> None:
    ca = _ca()
    client = _client(ca)
    verified = _policy(ca).build_client_verifier().verify(client.certificate, [])
    assert verified.subjects == [x509.UniformResourceIdentifier("spiffe://ledgerd.test/payouts")]
    with pytest.raises(VerificationError):  # its extended key usage is the client's only
        _policy(ca).build_server_verifier(x509.DNSName("localhost")).verify(client.certificate, [])


def test_another_cas_certificate_and_an_expired_one_are_refused() -> None:
    ca, other = _ca(), _ca("another CA")
    with pytest.raises(VerificationError):
        _policy(ca).build_client_verifier().verify(_client(other).certificate, [])
    expired = _server(ca, now=NOW - 3 * DAY)
    with pytest.raises(VerificationError):
        _policy(ca).build_server_verifier(x509.DNSName("localhost")).verify(expired.certificate, [])


def test_a_leaf_needs_a_name_and_a_positive_lifetime() -> None:
    ca = _ca()
    with pytest.raises(ValueError, match="needs a DNS name"):
        dev_ca.issue(
            ca, "x", usage=dev_ca.Usage.CLIENT, names=dev_ca.Names(), now=NOW, lifetime=DAY
        )
    with pytest.raises(ValueError, match="lifetime must be positive"):
        dev_ca.new_ca("x", now=NOW, lifetime=timedelta(0))


def test_written_files_are_private_and_load_back(tmp_path: Path) -> None:
    ca = _ca()
    dev_ca.write(ca, tmp_path / "ca.pem", tmp_path / "ca.key")
    for name in ("ca.pem", "ca.key"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == dev_ca.PRIVATE_FILE_MODE
    loaded = dev_ca.load(tmp_path / "ca.pem", tmp_path / "ca.key")
    assert loaded.certificate == ca.certificate
    assert loaded.key_pem() == ca.key_pem()
    # Replaced in one step each: no temporary file left behind.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ca.key", "ca.pem"]
