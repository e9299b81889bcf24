"""The REST server's ``ssl.SSLContext``, loaded again when the certificates are reloaded.

One context serves every connection; a connection takes the certificate the context holds when
its handshake starts, so loading new ones into it reaches new connections only. ``ssl`` loads a
chain from files alone: the checked bytes are written to a private temporary directory for it,
so what is loaded is exactly what was checked, whatever the files became since.
"""

from __future__ import annotations

import ssl
import tempfile
from pathlib import Path

from ledgerd.platform.tls.certificate_files import ServerCertificates
from ledgerd.platform.tls.dev_ca import write_private


def server_ssl_context(certificates: ServerCertificates) -> ssl.SSLContext:
    """A TLS 1.2+ server context holding ``certificates``' chain and key (no client auth)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    load_certificates(context, certificates)
    return context


def load_certificates(context: ssl.SSLContext, certificates: ServerCertificates) -> None:
    """Put ``certificates`` in ``context``; they are tried on a scratch context first.

    A failure on the scratch context raises and leaves ``context`` as it was.
    """
    with tempfile.TemporaryDirectory(prefix="ledgerd-tls-") as directory:
        chain, key = Path(directory) / "chain.pem", Path(directory) / "key.pem"
        write_private(chain, certificates.chain_pem)
        write_private(key, certificates.key_pem)
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(chain, key)
        context.load_cert_chain(chain, key)
