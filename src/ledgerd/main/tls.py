"""TLS for ``serve``, as the settings say: both servers' credentials from one set of files.

The gRPC server and the REST server share the certificate and key (``LEDGERD_TLS_CERT_FILE``,
``LEDGERD_TLS_KEY_FILE``); gRPC alone requires client certificates (``LEDGERD_GRPC_CLIENT_CA``).
The files are checked at start-up — a problem is one line naming the setting, exit 2 — and then
polled (``LEDGERD_TLS_RELOAD_INTERVAL_SECONDS``) and reloaded on SIGHUP, without a restart.

And the other way: the credentials ledgerd uses as a gRPC client (the gateway's forwarding, the
client commands), from ``LEDGERD_GRPC_SERVER_CA`` and ``LEDGERD_GRPC_CLIENT_CERT_FILE`` and
``_KEY_FILE``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc

from ledgerd.main.settings import Settings
from ledgerd.platform.tls.certificate_files import CertificatePaths
from ledgerd.platform.tls.channel_credentials import client_channel_credentials
from ledgerd.platform.tls.grpc_credentials import reloading_server_credentials
from ledgerd.platform.tls.reloading import ReloadingCertificates, run_certificate_reload_loop
from ledgerd.platform.tls.ssl_context import load_certificates, server_ssl_context


@dataclass(frozen=True, slots=True)
class ServerTls:
    """The servers' credentials, following ``certificates`` as they are reloaded."""

    certificates: ReloadingCertificates
    grpc: grpc.ServerCredentials
    rest: ssl.SSLContext

    @property
    def requires_client_certificates(self) -> bool:
        """GRPC refuses a handshake without a client certificate (``LEDGERD_GRPC_CLIENT_CA``)."""
        return self.certificates.current.client_ca_pem is not None


def server_tls(settings: Settings) -> ServerTls | None:
    """Both servers' TLS, or None (plaintext); ``CertificateFileError`` for unusable files."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    certificates = ReloadingCertificates(
        CertificatePaths(settings.tls_cert_file, settings.tls_key_file, settings.grpc_client_ca)
    )
    rest = server_ssl_context(certificates.current)
    certificates.on_reload(lambda loaded: load_certificates(rest, loaded))
    return ServerTls(certificates, reloading_server_credentials(certificates), rest)


@contextlib.asynccontextmanager
async def certificates_reloaded(tls: ServerTls | None, settings: Settings) -> AsyncIterator[None]:
    """Poll the files and reload on SIGHUP while the block runs (nothing without TLS)."""
    if tls is None:
        yield
        return
    now = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, now.set)
    done = asyncio.Event()
    task = asyncio.create_task(
        run_certificate_reload_loop(
            tls.certificates,
            done,
            interval_s=settings.tls_reload_interval_seconds,
            now=now,
        ),
        name="tls-reload",
    )
    try:
        yield
    finally:
        done.set()
        loop.remove_signal_handler(signal.SIGHUP)
        await task


def channel_credentials(settings: Settings) -> grpc.ChannelCredentials | None:
    """What ``serve`` forwards REST calls with (``LEDGERD_GATEWAY_FORWARD_TO``); None: plaintext."""
    return client_channel_credentials(
        settings.grpc_server_ca, settings.grpc_client_cert_file, settings.grpc_client_key_file
    )
