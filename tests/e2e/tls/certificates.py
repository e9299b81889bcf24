"""Certificates for the TLS tests, made with the development CA, and how to read a server's."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from ledgerd.platform.tls.dev_ca import Issued, Names, Usage, issue, new_ca, write

HOUR = timedelta(hours=1)
HANDSHAKE_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Pair:
    certificate: Path
    key: Path


def now() -> datetime:
    return datetime.now(UTC)


def ca(directory: Path, name: str) -> tuple[Issued, Path]:
    """A CA, and the file of its certificate (the bundle a peer trusts)."""
    made = new_ca(name, now=now(), lifetime=HOUR)
    path = directory / f"{name}.pem"
    path.write_bytes(made.certificate_pem())
    return made, path


def leaf(  # noqa: PLR0913 - keyword-only: what a test varies
    directory: Path,
    issuer: Issued,
    name: str,
    *,
    usage: Usage,
    uris: tuple[str, ...] = (),
    issued_at: datetime | None = None,
) -> tuple[Issued, Pair]:
    """A server certificate for 127.0.0.1 and localhost, or a client's naming ``uris``."""
    names = (
        Names(dns=("localhost",), ips=("127.0.0.1",))
        if usage is Usage.SERVER
        else Names(uris=uris, dns=() if uris else (name,))
    )
    made = issue(issuer, name, usage=usage, names=names, now=issued_at or now(), lifetime=HOUR)
    pair = Pair(directory / f"{name}.pem", directory / f"{name}.key")
    write(made, pair.certificate, pair.key)
    return made, pair


def served_serial(port: int, ca_file: Path, client: Pair | None = None) -> int:
    """The serial of the certificate a new TLS connection to ``port`` is shown.

    A handshake of its own (ALPN h2 for gRPC, http/1.1 for REST both offered), so it sees what
    any new connection sees, whatever connections are open already.
    """
    context = ssl.create_default_context(cafile=ca_file)
    context.set_alpn_protocols(["h2", "http/1.1"])
    if client is not None:
        context.load_cert_chain(client.certificate, client.key)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=HANDSHAKE_TIMEOUT_S) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number
