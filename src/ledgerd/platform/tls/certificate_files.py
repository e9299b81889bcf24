"""A server's certificate files read and checked: a certificate chain, its key, a CA bundle.

Checked before use, so that a half-written file or a certificate beside another's key is refused
with a reason instead of breaking every handshake after it was loaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization


class CertificateFileError(Exception):
    """A file that cannot be used: ``setting`` names the variable that points at it."""

    def __init__(self, setting: str, path: Path, reason: str) -> None:
        super().__init__(f"{setting}={str(path)!r}: {reason}")
        self.setting = setting
        # What is wrong with the file, without the setting and path (a settings error has them).
        self.reason = reason


@dataclass(frozen=True, slots=True)
class CertificatePaths:
    """Where the server's certificate chain and key are, and the client CA bundle (if any)."""

    certificate: Path
    key: Path
    client_ca: Path | None = None
    # The variables that name them, for the errors.
    certificate_setting: str = "LEDGERD_TLS_CERT_FILE"
    key_setting: str = "LEDGERD_TLS_KEY_FILE"
    client_ca_setting: str = "LEDGERD_GRPC_CLIENT_CA"

    def files(self) -> tuple[Path, ...]:
        return (self.certificate, self.key, *(() if self.client_ca is None else (self.client_ca,)))


@dataclass(frozen=True, slots=True)
class ServerCertificates:
    """PEM bytes, checked: the chain (leaf first), its key, and the client CA bundle or None."""

    chain_pem: bytes
    key_pem: bytes = field(repr=False)
    client_ca_pem: bytes | None = None

    @property
    def serial_number(self) -> int:
        return x509.load_pem_x509_certificate(self.chain_pem).serial_number


def read_server_certificates(paths: CertificatePaths) -> ServerCertificates:
    """The files' contents once each is readable and the key is the certificate's."""
    chain_pem = _read(paths.certificate_setting, paths.certificate)
    key_pem = _read(paths.key_setting, paths.key)
    chain = _certificates(paths.certificate_setting, paths.certificate, chain_pem)
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as error:
        reason = "not an unencrypted PEM private key" + _why(error)
        raise CertificateFileError(paths.key_setting, paths.key, reason) from None
    if _public_bytes(key.public_key()) != _public_bytes(chain[0].public_key()):
        reason = f"not the key of the certificate in {paths.certificate}"
        raise CertificateFileError(paths.key_setting, paths.key, reason)
    client_ca_pem = None
    if paths.client_ca is not None:
        client_ca_pem = _read(paths.client_ca_setting, paths.client_ca)
        _certificates(paths.client_ca_setting, paths.client_ca, client_ca_pem)
    return ServerCertificates(chain_pem, key_pem, client_ca_pem)


def read_certificate_bundle(setting: str, path: Path) -> bytes:
    """A PEM file of one certificate or more (a CA bundle), checked."""
    pem = _read(setting, path)
    _certificates(setting, path, pem)
    return pem


def read_key_pair(
    certificate_setting: str, certificate: Path, key_setting: str, key: Path
) -> tuple[bytes, bytes]:
    """A client's certificate chain and key, checked as a server's are."""
    checked = read_server_certificates(
        CertificatePaths(
            certificate, key, certificate_setting=certificate_setting, key_setting=key_setting
        )
    )
    return checked.chain_pem, checked.key_pem


def files_signature(paths: CertificatePaths) -> tuple[tuple[int, int, int], ...]:
    """What changes when any of the files is replaced or rewritten (inode, size, mtime)."""
    signature = []
    for path in paths.files():
        try:
            status = os.stat(path)  # noqa: PTH116 - the inode too, which Path.stat gives alike
        except OSError:
            signature.append((-1, -1, -1))
        else:
            signature.append((status.st_ino, status.st_size, status.st_mtime_ns))
    return tuple(signature)


def _read(setting: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise CertificateFileError(setting, path, error.strerror or type(error).__name__) from None


def _certificates(setting: str, path: Path, pem: bytes) -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError as error:
        reason = "no PEM certificate in it" + _why(error)
        raise CertificateFileError(setting, path, reason) from None
    return certificates


def _public_bytes(key: object) -> bytes:
    public_bytes = getattr(key, "public_bytes", None)
    if public_bytes is None:
        return b""
    encoded: bytes = public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return encoded


def _why(error: Exception) -> str:
    # cryptography's messages can be long and multi-line: the first line is the reason.
    first = str(error).splitlines()[0] if str(error) else ""
    return f" ({first})" if first and len(first) < 120 else ""  # noqa: PLR2004 - one short line
