"""gRPC server credentials that follow :class:`ReloadingCertificates`.

grpc calls the fetcher on each new handshake, from one of its own threads: it only compares a
version number and hands over immutable bytes, so it needs no lock and never touches the event
loop. Connections already open keep the certificate they were made with.
"""

from __future__ import annotations

import threading

import grpc

from ledgerd.platform.tls.certificate_files import ServerCertificates
from ledgerd.platform.tls.reloading import ReloadingCertificates


def _configuration(certificates: ServerCertificates) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration(
        [(certificates.key_pem, certificates.chain_pem)],
        root_certificates=certificates.client_ca_pem,
    )


def reloading_server_credentials(
    certificates: ReloadingCertificates,
) -> grpc.ServerCredentials:
    """TLS credentials, requiring a client certificate when a client CA bundle is configured."""
    served = {"version": certificates.version}
    lock = threading.Lock()  # several handshakes may ask at once

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        with lock:
            if served["version"] == certificates.version:
                return None  # no change: grpc keeps the configuration it has
            served["version"] = certificates.version
            return _configuration(certificates.current)

    return grpc.dynamic_ssl_server_credentials(
        _configuration(certificates.current),
        # The stubs leave out the None that grpc documents as "no change".
        fetch,  # type: ignore[arg-type]
        require_client_authentication=certificates.current.client_ca_pem is not None,
    )
