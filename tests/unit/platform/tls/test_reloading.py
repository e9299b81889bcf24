"""ReloadingCertificates on real files: what is reloaded, what is refused, and when."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ledgerd.platform.tls.certificate_files import (
    CertificateFileError,
    CertificatePaths,
    ServerCertificates,
)
from ledgerd.platform.tls.dev_ca import Issued, Names, Usage, issue, new_ca, write
from ledgerd.platform.tls.reloading import ReloadingCertificates, run_certificate_reload_loop

HOUR = timedelta(hours=1)
LOOP_WAIT_S = 5.0


def _server(ca: Issued) -> Issued:
    return issue(
        ca,
        "server",
        usage=Usage.SERVER,
        names=Names(dns=("localhost",)),
        now=datetime.now(UTC),
        lifetime=HOUR,
    )


@pytest.fixture
def ca() -> Issued:
    return new_ca("test CA", now=datetime.now(UTC), lifetime=HOUR)


@pytest.fixture
def paths(tmp_path: Path, ca: Issued) -> CertificatePaths:
    paths = CertificatePaths(tmp_path / "server.pem", tmp_path / "server.key")
    write(_server(ca), paths.certificate, paths.key)
    return paths


def test_unchanged_files_are_not_read_again(paths: CertificatePaths) -> None:
    certificates = ReloadingCertificates(paths)
    assert not certificates.check()
    assert certificates.version == 1


def test_a_replaced_pair_is_loaded_and_told_to_the_listeners(
    paths: CertificatePaths, ca: Issued
) -> None:
    certificates = ReloadingCertificates(paths)
    told: list[ServerCertificates] = []
    certificates.on_reload(told.append)
    renewed = _server(ca)
    write(renewed, paths.certificate, paths.key)

    assert certificates.check()
    assert certificates.version == 2
    assert certificates.current.serial_number == renewed.certificate.serial_number
    assert told == [certificates.current]


def test_a_half_written_certificate_is_not_loaded(
    paths: CertificatePaths, caplog: pytest.LogCaptureFixture
) -> None:
    certificates = ReloadingCertificates(paths)
    before = certificates.current
    pem = paths.certificate.read_bytes()
    paths.certificate.write_bytes(pem[: len(pem) // 2])

    with caplog.at_level(logging.WARNING):
        assert not certificates.check()
    assert certificates.current == before
    assert "LEDGERD_TLS_CERT_FILE" in caplog.text
    caplog.clear()
    assert not certificates.check()  # the same bad file: warned about once
    assert caplog.text == ""


def test_a_new_key_before_its_certificate_is_not_loaded(
    paths: CertificatePaths, ca: Issued
) -> None:
    # A writer that replaces the key, then (a moment later) the certificate: in between the
    # pair does not match, and the old one must keep serving until the certificate arrives.
    certificates = ReloadingCertificates(paths)
    before = certificates.current
    renewed = _server(ca)
    paths.key.write_bytes(renewed.key_pem())
    assert not certificates.check()
    assert certificates.current == before
    paths.certificate.write_bytes(renewed.certificate_pem())
    assert certificates.check()
    assert certificates.current.serial_number == renewed.certificate.serial_number


def test_a_listener_that_fails_keeps_the_old_certificates(
    paths: CertificatePaths, ca: Issued
) -> None:
    certificates = ReloadingCertificates(paths)
    before = certificates.current

    def refuse(_loaded: ServerCertificates) -> None:
        msg = "cannot load"
        raise ValueError(msg)

    certificates.on_reload(refuse)
    write(_server(ca), paths.certificate, paths.key)
    assert not certificates.check()
    assert certificates.current == before
    assert certificates.version == 1


def test_unusable_files_at_start_are_refused_naming_the_setting(tmp_path: Path) -> None:
    paths = CertificatePaths(tmp_path / "none.pem", tmp_path / "none.key")
    with pytest.raises(CertificateFileError) as raised:
        ReloadingCertificates(paths)
    assert raised.value.setting == "LEDGERD_TLS_CERT_FILE"


async def test_the_loop_reloads_at_once_when_asked(paths: CertificatePaths, ca: Issued) -> None:
    certificates = ReloadingCertificates(paths)
    stop, now, reloaded = asyncio.Event(), asyncio.Event(), asyncio.Event()
    certificates.on_reload(lambda _loaded: reloaded.set())
    loop = asyncio.create_task(
        run_certificate_reload_loop(certificates, stop, interval_s=3600, now=now)
    )
    try:
        renewed = _server(ca)
        write(renewed, paths.certificate, paths.key)
        await asyncio.sleep(0)
        # Files changed but the interval is an hour: only `now` (SIGHUP) reloads them.
        now.set()
        await asyncio.wait_for(reloaded.wait(), LOOP_WAIT_S)
        assert certificates.current.serial_number == renewed.certificate.serial_number
    finally:
        stop.set()
        await asyncio.wait_for(loop, LOOP_WAIT_S)
