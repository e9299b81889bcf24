"""Deliveries over HTTPS to a real receiver whose certificate a private CA issued.

The receiver listens on 127.0.0.1 (allowed, as FAST_RETRIES does) with a certificate from a
test CA made with the development CA (``platform/tls/dev_ca.py``), and is reached as
``https://localhost:PORT``: connected to by the address the guarded transport resolved, its
certificate verified against the URL's host name.

- With the CA in LEDGERD_WEBHOOKS_CA_FILE, a certificate naming ``localhost`` (and no IP
  address: a check against the address connected to would refuse it) is accepted, and the
  event arrives signed.
- A certificate of the same CA naming only another host (``receiver.test``) is refused: a
  transport that did not check the name would deliver.
- Without the setting the CA is not trusted, nor when the environment's SSL_CERT_FILE names it
  (the settings say what deliveries trust, as they say where they may go).

Nothing reaches the receiver when the certificate is refused: the handshake fails before a byte
of the request is sent, and each attempt is a recorded failure that says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ledgerd.platform.tls.dev_ca import Issued, Names, Usage, issue, new_ca, write
from ledgerd.webhooks.domain.deliveries import AttemptOutcome, DeliveryAttempt
from tests.integration.outbox.helpers import open_books, pay
from tests.integration.webhooks.support import (
    FAST_RETRIES,
    dispatching,
    register,
    settled,
    webhook_app,
)
from tests.webhook_receiver import ServerCertificate, receiving, signed_by

LEDGER = "books"
LIFETIME = timedelta(hours=1)
# localhost may resolve to ::1 as well as 127.0.0.1 (the receiver listens on the latter): both
# allowed, or a resolver listing ::1 would have the name refused before any TLS is tried.
LOOPBACK = {"webhooks_allowed_networks": "127.0.0.0/8,::1/128"}
VERIFY_FAILED = "certificate verify failed"


@dataclass(frozen=True, slots=True)
class PrivateCa:
    issued: Issued
    bundle: Path  # its certificate, PEM: what LEDGERD_WEBHOOKS_CA_FILE names

    def server_certificate(self, directory: Path, *dns: str) -> ServerCertificate:
        """A receiver's certificate naming the host names ``dns`` only (no IP address)."""
        leaf = issue(
            self.issued,
            dns[0],
            usage=Usage.SERVER,
            names=Names(dns=dns),
            now=datetime.now(UTC),
            lifetime=LIFETIME,
        )
        files = ServerCertificate(directory / f"{dns[0]}.pem", directory / f"{dns[0]}.key")
        write(leaf, files.certificate, files.key)
        return files


@pytest.fixture
def private_ca(tmp_path: Path) -> PrivateCa:
    issued = new_ca("ledgerd tests' internal CA", now=datetime.now(UTC), lifetime=LIFETIME)
    bundle = tmp_path / "internal-ca.pem"
    bundle.write_bytes(issued.certificate_pem())
    return PrivateCa(issued, bundle)


async def _deliver_one(
    sqlite_url: str, url: str, count: int, **settings: object
) -> tuple[str, list[DeliveryAttempt]]:
    """One event posted to an endpoint at ``url``; its secret and its first ``count`` attempts."""
    async with webhook_app(sqlite_url, **{**LOOPBACK, **settings}) as app:
        await open_books(app, LEDGER, "bank", "alice")
        hook = await register(app, LEDGER, url)
        await app.post.post_one(LEDGER, pay("t1", "bank", "alice", 100))
        async with dispatching(app):
            recorded = await settled(app, LEDGER, hook.webhook.endpoint.id, count)
    return hook.secret, recorded


async def _refused(
    sqlite_url: str, certificate: ServerCertificate, **settings: object
) -> list[str]:
    """Every attempt at a receiver with ``certificate``, reached as localhost, refused: why.

    Nothing arrived, and the attempts all failed without an answer, then dead-lettered.
    """
    async with receiving(tls=certificate) as receiver:
        _secret, recorded = await _deliver_one(
            sqlite_url,
            receiver.url("/in", host="localhost"),
            FAST_RETRIES["webhooks_max_attempts"],
            **settings,
        )
    assert receiver.arrivals == []
    assert [attempt.status_code for attempt in recorded] == [None] * len(recorded)
    assert [attempt.outcome for attempt in recorded] == (
        [AttemptOutcome.FAILED] * (len(recorded) - 1) + [AttemptOutcome.DEAD_LETTERED]
    )
    return [attempt.error or "" for attempt in recorded]


async def test_with_the_ca_trusted_a_receiver_named_by_its_certificate_gets_the_event_signed(
    migrated_sqlite_url: str, private_ca: PrivateCa, tmp_path: Path
) -> None:
    certificate = private_ca.server_certificate(tmp_path, "localhost")
    async with receiving(tls=certificate) as receiver:
        url = receiver.url("/in", host="localhost")
        assert url.startswith("https://localhost:")
        secret, recorded = await _deliver_one(
            migrated_sqlite_url, url, 1, webhooks_ca_file=private_ca.bundle
        )
    [attempt] = recorded
    assert (attempt.outcome, attempt.status_code, attempt.error) == (
        AttemptOutcome.DELIVERED,
        200,
        None,
    )
    [arrival] = receiver.arrivals
    assert arrival.path == "/in"
    assert signed_by(arrival, secret)


async def test_a_certificate_that_does_not_name_the_urls_host_is_refused(
    migrated_sqlite_url: str, private_ca: PrivateCa, tmp_path: Path
) -> None:
    # Issued by the trusted CA, valid in every other way: only the name is wrong.
    certificate = private_ca.server_certificate(tmp_path, "receiver.test")
    refused = await _refused(migrated_sqlite_url, certificate, webhooks_ca_file=private_ca.bundle)
    for error in refused:
        assert error.startswith("ConnectError: "), error
        assert VERIFY_FAILED in error, error
        assert "Hostname mismatch" in error, error
        assert "'localhost'" in error, error


async def test_without_the_ca_setting_a_private_cas_receiver_is_refused(
    migrated_sqlite_url: str, private_ca: PrivateCa, tmp_path: Path
) -> None:
    certificate = private_ca.server_certificate(tmp_path, "localhost")
    for error in await _refused(migrated_sqlite_url, certificate):
        assert error.startswith("ConnectError: "), error
        assert f"{VERIFY_FAILED}: unable to get local issuer certificate" in error, error


async def test_the_environments_ssl_cert_file_does_not_make_deliveries_trust_a_ca(
    migrated_sqlite_url: str,
    private_ca: PrivateCa,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What Python's and httpx's defaults would trust instead of their roots: not deliveries.
    monkeypatch.setenv("SSL_CERT_FILE", str(private_ca.bundle))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    certificate = private_ca.server_certificate(tmp_path, "localhost")
    for error in await _refused(migrated_sqlite_url, certificate):
        assert f"{VERIFY_FAILED}: unable to get local issuer certificate" in error, error
