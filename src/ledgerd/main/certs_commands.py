"""``ledgerd certs``: a development CA and its certificates, for TLS and mTLS on one machine.

A dev tool, not a PKI (docs/security.md, "TLS and mTLS"): the CA's key sits in a file beside
its certificate, nothing is ever revoked, lifetimes are short so that a lost file matters
little. Private keys are written mode 0600, each file replaced in one step (running servers
reload certificates when their files change).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Final

import typer

from ledgerd.main.command_runner import EXIT_ERROR
from ledgerd.main.command_style import PLAIN_HELP, Command
from ledgerd.platform.tls import dev_ca

certs = typer.Typer(
    name="certs", help="A development CA and TLS certificates (not a PKI).", **PLAIN_HELP
)

CA_CERTIFICATE: Final = "ca.pem"
CA_KEY: Final = "ca.key"
MAX_HOURS: Final = 90 * 24

DirectoryOption = Annotated[
    Path, typer.Option("--dir", help="where the CA and the certificates are kept")
]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_ERROR)


def _lifetime(hours: int) -> timedelta:
    if not 1 <= hours <= MAX_HOURS:
        msg = f"--hours must be 1 to {MAX_HOURS}"
        raise _fail(msg)
    return timedelta(hours=hours)


@certs.command("init", cls=Command)
def init(
    directory: DirectoryOption = Path("certs"),
    hours: Annotated[int, typer.Option(help="how long the CA is valid")] = 30 * 24,
    force: Annotated[  # noqa: FBT002 - typer: a flag is a bool parameter
        bool, typer.Option("--force", help="replace a CA already there")
    ] = False,
) -> None:
    """Make a development CA: DIR/ca.pem (give it to clients and servers) and DIR/ca.key."""
    certificate, key = directory / CA_CERTIFICATE, directory / CA_KEY
    if (certificate.exists() or key.exists()) and not force:
        msg = f"{directory} holds a CA already (--force replaces it: its certificates stop working)"
        raise _fail(msg)
    ca = dev_ca.new_ca("ledgerd development CA", now=datetime.now(UTC), lifetime=_lifetime(hours))
    dev_ca.write(ca, certificate, key)
    typer.echo(f"CA {certificate} (key {key}), valid until {_until(ca)}")


@certs.command("issue", cls=Command)
def issue(  # noqa: PLR0913, PLR0917 - typer: one parameter per command-line option
    name: Annotated[str, typer.Argument(metavar="NAME", help="files DIR/NAME.pem and NAME.key")],
    client: Annotated[  # noqa: FBT002 - typer: a flag is a bool parameter
        bool, typer.Option("--client", help="a client certificate (default: a server's)")
    ] = False,
    dns: Annotated[
        list[str] | None, typer.Option("--dns", help="a DNS name it is for (repeatable)")
    ] = None,
    ip: Annotated[
        list[str] | None, typer.Option("--ip", help="an IP address it is for (repeatable)")
    ] = None,
    uri: Annotated[
        list[str] | None,
        typer.Option("--uri", help="a URI naming it, e.g. spiffe://ledgerd.test/payouts"),
    ] = None,
    hours: Annotated[int, typer.Option(help="how long it is valid")] = 24,
    directory: DirectoryOption = Path("certs"),
) -> None:
    """Issue a server (or --client) certificate signed by the development CA.

    A server's names default to localhost and 127.0.0.1; a client certificate needs a name: a
    URI (its identity for mTLS) or a DNS name.
    """
    if not name or "/" in name or name.startswith("."):
        msg = f"NAME {name!r} must be a plain file name"
        raise _fail(msg)
    try:
        ca = dev_ca.load(directory / CA_CERTIFICATE, directory / CA_KEY)
    except FileNotFoundError:
        msg = f"no CA in {directory}: make one with `ledgerd certs init --dir {directory}`"
        raise _fail(msg) from None
    names = dev_ca.Names(tuple(dns or ()), tuple(ip or ()), tuple(uri or ()))
    if not client and names == dev_ca.Names():
        names = dev_ca.Names(("localhost",), ("127.0.0.1",))
    try:
        leaf = dev_ca.issue(
            ca,
            name,
            usage=dev_ca.Usage.CLIENT if client else dev_ca.Usage.SERVER,
            names=names,
            now=datetime.now(UTC),
            lifetime=_lifetime(hours),
        )
    except ValueError as error:
        raise _fail(str(error)) from None
    certificate, key = directory / f"{name}.pem", directory / f"{name}.key"
    dev_ca.write(leaf, certificate, key)
    kind = "client" if client else "server"
    typer.echo(f"{kind} certificate {certificate} (key {key}), valid until {_until(leaf)}")


def _until(issued: dev_ca.Issued) -> str:
    return issued.certificate.not_valid_after_utc.isoformat(timespec="seconds")
