"""What https deliveries trust: httpx's public roots (certifi's), and the CAs given added to them.

Not the environment's SSL_CERT_FILE or SSL_CERT_DIR: the settings say what deliveries trust.
(The certificate checks themselves, against a real receiver: tests/integration/webhooks/
test_tls_receivers.py.)
"""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from ledgerd.platform.tls.dev_ca import Issued, new_ca
from ledgerd.webhooks.adapters.http_sender import delivery_tls_context


def _ca(name: str) -> Issued:
    return new_ca(name, now=datetime.now(UTC), lifetime=timedelta(hours=1))


def _subjects(context: ssl.SSLContext) -> list[str]:
    """The subjects of the CAs ``context`` trusts, sorted (the store keeps no order)."""
    return sorted(str(certificate["subject"]) for certificate in context.get_ca_certs())


def _public_roots() -> list[str]:
    return _subjects(httpx.create_ssl_context(trust_env=False))


def _with(*names: str) -> list[str]:
    """The public roots and CAs of these common names."""
    return sorted([*_public_roots(), *(str(((("commonName", name),),)) for name in names)])


def test_without_cas_given_the_public_roots_alone_are_trusted_and_names_checked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # What the environment would have trusted instead of the roots: not used.
    bundle = tmp_path / "environment-ca.pem"
    bundle.write_bytes(_ca("environment CA").certificate_pem())
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    context = delivery_tls_context(None)
    assert _subjects(context) == _public_roots()
    assert len(_public_roots()) > 100  # certifi's bundle, not an empty store
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname


def test_the_cas_given_are_added_to_the_public_roots() -> None:
    first, second = _ca("internal CA one"), _ca("internal CA two")
    context = delivery_tls_context(first.certificate_pem() + second.certificate_pem())
    assert _subjects(context) == _with("internal CA one", "internal CA two")
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname


def test_text_and_other_blocks_around_the_certificates_are_skipped() -> None:
    internal = _ca("internal CA")
    # A bundle as people write them: a comment, not ASCII, and a key left in it.
    bundle = (
        "# Émis par l'équipe réseau\n".encode() + internal.certificate_pem() + internal.key_pem()
    )
    context = delivery_tls_context(bundle)
    assert _subjects(context) == _with("internal CA")
