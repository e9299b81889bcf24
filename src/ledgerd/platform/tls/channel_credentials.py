"""The credentials ledgerd calls a gRPC server with: TLS, and a client certificate to present.

For the REST gateway's forwarding and the client commands. Read once, when the channel is made:
a long-lived channel keeps the client certificate it started with (docs/security.md says so).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import grpc

from ledgerd.platform.tls.certificate_files import read_certificate_bundle, read_key_pair

SERVER_CA_SETTING: Final = "LEDGERD_GRPC_SERVER_CA"
CLIENT_CERT_SETTING: Final = "LEDGERD_GRPC_CLIENT_CERT_FILE"
CLIENT_KEY_SETTING: Final = "LEDGERD_GRPC_CLIENT_KEY_FILE"


def client_channel_credentials(
    server_ca: Path | None, client_certificate: Path | None, client_key: Path | None
) -> grpc.ChannelCredentials | None:
    """TLS trusting ``server_ca``, presenting the client pair when given; None: plaintext.

    ``CertificateFileError`` names the setting of a file that cannot be used.
    """
    if server_ca is None:
        return None
    root = read_certificate_bundle(SERVER_CA_SETTING, server_ca)
    if client_certificate is None or client_key is None:
        return grpc.ssl_channel_credentials(root_certificates=root)
    chain, key = read_key_pair(
        CLIENT_CERT_SETTING, client_certificate, CLIENT_KEY_SETTING, client_key
    )
    return grpc.ssl_channel_credentials(
        root_certificates=root, private_key=key, certificate_chain=chain
    )
