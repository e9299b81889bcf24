"""The identity of a gRPC peer's verified client certificate (mTLS).

grpc puts the certificate the handshake verified in the call's auth context
(``x509_pem_cert``); there is none on a plaintext connection, nor on a TLS one whose client sent
no certificate (which a server requiring one refuses before any call). The identity is the
certificate's first SAN URI (a SPIFFE-style id, ``spiffe://ledgerd.test/payouts``), else its
subject's common name.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Final

from cryptography import x509
from cryptography.x509.oid import NameOID

PEM_CERT_KEY: Final = "x509_pem_cert"
# A connection makes many calls with one certificate: parsed once per distinct certificate.
_PARSED_CERTIFICATES: Final = 1024


def peer_identity(auth_context: Mapping[str, Iterable[bytes]] | None) -> str | None:
    """The identity of the verified client certificate in ``auth_context``, or None."""
    if not auth_context:
        return None
    pems = list(auth_context.get(PEM_CERT_KEY, ()))
    return identity_of(pems[0]) if pems else None


@functools.lru_cache(maxsize=_PARSED_CERTIFICATES)
def identity_of(pem: bytes) -> str | None:
    """The certificate's first SAN URI, else its subject's common name, else None."""
    certificate = x509.load_pem_x509_certificate(pem)
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        uris: list[str] = []
    else:
        uris = names.value.get_values_for_type(x509.UniformResourceIdentifier)
    if uris:
        return uris[0]
    common_names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if common_names:
        value = common_names[0].value
        return value if isinstance(value, str) else value.decode()
    return None
