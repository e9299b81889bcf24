"""TLS for ``serve``, as the settings say: both servers' credentials from one set of files.

The gRPC server and the REST server share the certificate and key (``LEDGERD_TLS_CERT_FILE``,
``LEDGERD_TLS_KEY_FILE``); gRPC alone requires client certificates (``LEDGERD_GRPC_CLIENT_CA``).
The files are checked at start-up — a problem is one line naming the setting, exit 2 — and then
polled (``LEDGERD_TLS_RELOAD_INTERVAL_SECONDS``) and reloaded on SIGHUP, without a restart.

And the other way: the channel the REST gateway forwards over (``LEDGERD_GATEWAY_FORWARD_TO``),
TLS by ``LEDGERD_GRPC_SERVER_CA``, presenting ``LEDGERD_GRPC_CLIENT_CERT_FILE`` and ``_KEY_FILE``,
which are reloaded alike (the client commands read the same variables: ``main/api_client.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import grpc

from ledgerd.main.settings import Settings
from ledgerd.platform.tls.certificate_files import CertificatePaths, ServerCertificates
from ledgerd.platform.tls.channel_credentials import (
    CLIENT_CERT_SETTING,
    CLIENT_KEY_SETTING,
    SERVER_CA_SETTING,
    client_channel_credentials,
)
from ledgerd.platform.tls.grpc_credentials import reloading_server_credentials
from ledgerd.platform.tls.reloading import ReloadingCertificates, run_certificate_reload_loop
from ledgerd.platform.tls.renewing_channel import RenewingChannel
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


@dataclass(frozen=True, slots=True)
class Forwarding:
    """The gateway's channel to the server it forwards to, and the certificates it presents."""

    channel: grpc.aio.Channel
    # The client certificate and key, reloaded as the server's are; None: none presented.
    certificates: ReloadingCertificates | None


def forwarding(settings: Settings) -> Forwarding | None:
    """The channel ``LEDGERD_GATEWAY_FORWARD_TO`` is called over; None: no forwarding.

    TLS when ``LEDGERD_GRPC_SERVER_CA`` is set; presenting ``LEDGERD_GRPC_CLIENT_CERT_FILE``,
    whose renewal on disk makes a new channel (``RenewingChannel``), when that is.
    """
    target = settings.gateway_forward_to
    if not target:
        return None
    if settings.grpc_client_cert_file is None or settings.grpc_client_key_file is None:
        credentials = channel_credentials(settings)
        if credentials is None:
            return Forwarding(grpc.aio.insecure_channel(target), None)
        return Forwarding(grpc.aio.secure_channel(target, credentials), None)
    certificates = ReloadingCertificates(
        CertificatePaths(
            settings.grpc_client_cert_file,
            settings.grpc_client_key_file,
            settings.grpc_server_ca,
            certificate_setting=CLIENT_CERT_SETTING,
            key_setting=CLIENT_KEY_SETTING,
            client_ca_setting=SERVER_CA_SETTING,
        )
    )

    def open_channel(loaded: ServerCertificates) -> grpc.aio.Channel:
        return grpc.aio.secure_channel(
            target,
            grpc.ssl_channel_credentials(
                root_certificates=loaded.client_ca_pem,
                private_key=loaded.key_pem,
                certificate_chain=loaded.chain_pem,
            ),
        )

    return Forwarding(RenewingChannel(certificates, open_channel), certificates)


def reloading(
    server: ServerTls | None, forwarding: Forwarding | None
) -> list[ReloadingCertificates]:
    """Every set of certificate files ``serve`` keeps reloaded: the servers', the gateway's."""
    sets = [] if server is None else [server.certificates]
    if forwarding is not None and forwarding.certificates is not None:
        sets.append(forwarding.certificates)
    return sets


@contextlib.asynccontextmanager
async def certificates_reloaded(
    reloading: Sequence[ReloadingCertificates], settings: Settings
) -> AsyncIterator[None]:
    """Poll the files and reload on SIGHUP while the block runs (nothing without TLS)."""
    if not reloading:
        yield
        return
    now = [asyncio.Event() for _ in reloading]
    loop = asyncio.get_running_loop()

    def hang_up() -> None:
        for event in now:
            event.set()

    loop.add_signal_handler(signal.SIGHUP, hang_up)
    done = asyncio.Event()
    tasks = [
        asyncio.create_task(
            run_certificate_reload_loop(
                certificates, done, interval_s=settings.tls_reload_interval_seconds, now=event
            ),
            name="tls-reload",
        )
        for certificates, event in zip(reloading, now, strict=True)
    ]
    try:
        yield
    finally:
        done.set()
        loop.remove_signal_handler(signal.SIGHUP)
        await asyncio.gather(*tasks)


def channel_credentials(settings: Settings) -> grpc.ChannelCredentials | None:
    """TLS to the server ``serve`` forwards to, without a client certificate; None: plaintext."""
    return client_channel_credentials(settings.grpc_server_ca, None, None)
