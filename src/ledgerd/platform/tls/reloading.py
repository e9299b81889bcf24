"""The server's certificates, reloaded when their files change, without a restart.

Short-lived certificates are replaced on disk while the server runs; each transport picks up
the new ones for the connections that start after (gRPC asks on every handshake; the REST
server's ``ssl.SSLContext`` is loaded again). A check reads the files only when one of them
changed (inode, size or modification time), or when asked to at once (SIGHUP). What fails the
checks of :func:`read_server_certificates` — a half-written file, a certificate beside another's
key — is not loaded: a warning says why, and the certificates in use stay.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ledgerd.platform.tls.certificate_files import (
    CertificateFileError,
    CertificatePaths,
    ServerCertificates,
    files_signature,
    read_server_certificates,
)

log = logging.getLogger(__name__)

Listener = Callable[[ServerCertificates], None]


class ReloadingCertificates:
    """The certificates in use (``current``, numbered by ``version``), kept on the files'.

    Built from files that pass the checks (else ``CertificateFileError`` at start-up, naming the
    setting): a server never starts with certificates it cannot use.
    """

    def __init__(self, paths: CertificatePaths) -> None:
        self._paths = paths
        self._signature = files_signature(paths)
        self._current = read_server_certificates(paths)
        self._version = 1
        self._listeners: list[Listener] = []

    @property
    def current(self) -> ServerCertificates:
        return self._current

    @property
    def version(self) -> int:
        return self._version

    @property
    def paths(self) -> CertificatePaths:
        return self._paths

    def on_reload(self, listener: Listener) -> None:
        """Call ``listener`` with the new certificates on every reload (on the event loop)."""
        self._listeners.append(listener)

    def check(self, *, force: bool = False) -> bool:
        """Reload if the files changed (or ``force``); whether new certificates are in use."""
        signature = files_signature(self._paths)
        if signature == self._signature and not force:
            return False
        # Remembered even when refused, so that one bad write is warned about once, not on
        # every tick; the next change of any of the files is read again.
        self._signature = signature
        try:
            loaded = read_server_certificates(self._paths)
        except CertificateFileError as error:
            log.warning("TLS certificates not reloaded, the ones in use stay: %s", error)
            return False
        if loaded == self._current:
            return False
        for listener in self._listeners:
            try:
                listener(loaded)
            except Exception as error:  # noqa: BLE001 - said, and the old ones kept
                log.warning("TLS certificates not reloaded, the ones in use stay: %s", error)
                return False
        self._current = loaded
        self._version += 1
        log.info(
            "TLS certificates reloaded from %s (serial %x)",
            self._paths.certificate,
            loaded.serial_number,
        )
        return True


async def run_certificate_reload_loop(
    certificates: ReloadingCertificates,
    stop: asyncio.Event,
    *,
    interval_s: float,
    now: asyncio.Event | None = None,
) -> None:
    """Check the files every ``interval_s`` seconds, and at once when ``now`` is set (SIGHUP)."""
    while not stop.is_set():
        forced = now is not None and now.is_set()
        if now is not None:
            now.clear()
        certificates.check(force=forced)
        waits = [asyncio.ensure_future(stop.wait())]
        if now is not None:
            waits.append(asyncio.ensure_future(now.wait()))
        _done, pending = await asyncio.wait(
            waits, timeout=interval_s, return_when="FIRST_COMPLETED"
        )
        for waiting in pending:
            waiting.cancel()
