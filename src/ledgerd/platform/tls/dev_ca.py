"""A development certificate authority: a CA and short-lived server and client certificates.

For running ledgerd with TLS and mTLS on a laptop or in tests — not a PKI: no revocation, no
policy, the CA's key in a file. Keys are ECDSA P-256 (what every TLS stack, gRPC's BoringSSL
included, accepts); certificates carry the extensions a strict verifier insists on (subject
alternative names, key usages, the extended usage of a server or a client, key identifiers).
"""

from __future__ import annotations

import ipaddress
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Certificates start a little in the past: a peer whose clock is behind must not refuse them.
CLOCK_SKEW: Final = timedelta(minutes=5)
PRIVATE_FILE_MODE: Final = 0o600


class Usage(StrEnum):
    SERVER = "server"
    CLIENT = "client"


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate and its private key."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey = field(repr=False)

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


@dataclass(frozen=True, slots=True)
class Names:
    """Whom a leaf certificate names: its subject alternative names (one at least)."""

    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    # URIs such as a SPIFFE-style id, spiffe://ledgerd.test/payouts: a service's identity.
    uris: tuple[str, ...] = ()

    def general_names(self) -> list[x509.GeneralName]:
        names: list[x509.GeneralName] = [x509.DNSName(name) for name in self.dns]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in self.ips]
        names += [x509.UniformResourceIdentifier(uri) for uri in self.uris]
        return names


def new_ca(common_name: str, *, now: datetime, lifetime: timedelta) -> Issued:
    """A self-signed CA that may sign leaves only (path length 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    public = key.public_key()
    certificate = (
        _validity(x509.CertificateBuilder(), now, lifetime)
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(certificate, key)


def issue(  # noqa: PLR0913 - keyword-only: what a leaf is, each named
    ca: Issued,
    common_name: str,
    *,
    usage: Usage,
    names: Names,
    now: datetime,
    lifetime: timedelta,
) -> Issued:
    """A leaf certificate signed by ``ca``, for a server or a client, naming ``names``."""
    general_names = names.general_names()
    if not general_names:
        msg = "a certificate needs a DNS name, an IP address or a URI to name its holder"
        raise ValueError(msg)
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    purpose = (
        ExtendedKeyUsageOID.SERVER_AUTH
        if usage is Usage.SERVER
        else ExtendedKeyUsageOID.CLIENT_AUTH
    )
    ca_key_id = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    certificate = (
        _validity(x509.CertificateBuilder(), now, lifetime)
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.certificate.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
        .add_extension(x509.SubjectAlternativeName(general_names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_key_id.value),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(certificate, key)


def _validity(
    builder: x509.CertificateBuilder, now: datetime, lifetime: timedelta
) -> x509.CertificateBuilder:
    if lifetime <= timedelta(0):
        msg = "a certificate's lifetime must be positive"
        raise ValueError(msg)
    return builder.not_valid_before(now - CLOCK_SKEW).not_valid_after(now + lifetime)


def load(certificate_path: Path, key_path: Path) -> Issued:
    """A certificate and key written by :func:`write` (the CA's, to issue with)."""
    certificate = x509.load_pem_x509_certificate(certificate_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        msg = f"{key_path} holds no EC private key"
        raise TypeError(msg)
    return Issued(certificate, key)


def write(issued: Issued, certificate_path: Path, key_path: Path) -> None:
    """Write both as PEM, each replacing its file in one step, the key readable by its owner only.

    In one step (a temporary file renamed over the old one) because servers reload certificates
    when their files change: a reader must see the old file or the new one, never half of one.
    The key first, so that a certificate is never newer than the key that goes with it.
    """
    write_private(key_path, issued.key_pem())
    write_private(certificate_path, issued.certificate_pem())


def write_private(path: Path, data: bytes) -> None:
    """``data`` into ``path`` atomically, mode 0600 from the start (never briefly readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    temporary = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        temporary.chmod(PRIVATE_FILE_MODE)  # mkstemp makes 0600 already: said, not assumed
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
