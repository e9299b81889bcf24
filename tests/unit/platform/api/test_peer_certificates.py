"""A verified client certificate's identity: its SAN URI, else its subject's common name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ledgerd.platform.api.peer_certificates import PEM_CERT_KEY, identity_of, peer_identity
from ledgerd.platform.tls.dev_ca import Names, Usage, issue, new_ca

NOW = datetime.now(UTC)
HOUR = timedelta(hours=1)
CA = new_ca("test CA", now=NOW, lifetime=HOUR)


def _client_pem(common_name: str, names: Names) -> bytes:
    return issue(
        CA, common_name, usage=Usage.CLIENT, names=names, now=NOW, lifetime=HOUR
    ).certificate_pem()


def test_the_first_uri_is_the_identity() -> None:
    pem = _client_pem(
        "payouts",
        Names(dns=("payouts.internal",), uris=("spiffe://t/payouts", "spiffe://t/other")),
    )
    assert identity_of(pem) == "spiffe://t/payouts"


def test_without_a_uri_the_common_name_is() -> None:
    assert identity_of(_client_pem("reports", Names(dns=("reports.internal",)))) == "reports"


def test_no_certificate_no_identity() -> None:
    assert peer_identity(None) is None
    assert peer_identity({}) is None
    # A TLS connection whose client sent no certificate: other properties only.
    assert peer_identity({"transport_security_type": [b"ssl"]}) is None
    pem = _client_pem("x", Names(uris=("spiffe://t/x",)))
    assert peer_identity({PEM_CERT_KEY: [pem]}) == "spiffe://t/x"
