"""Listen addresses (``HOST:PORT``): who can reach one, and why a server cannot listen on it.

An empty host (``:0``), ``0.0.0.0`` or ``[::]`` listens on every interface: the server answers
anyone who can reach the machine. Deployments need that, so it stays allowed, but it should be
a choice, not an accident: binding anything but a loopback address logs a warning.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket

log = logging.getLogger(__name__)


def is_loopback(address: str) -> bool:
    """Whether ``address``'s host is a loopback address (``127.0.0.1``, ``[::1]``, localhost)."""
    host = address.rpartition(":")[0].removeprefix("[").removesuffix("]")
    if not host:
        return False  # no host: every interface
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass  # a host name: loopback only if every address it names is
    try:
        found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    return bool(found) and all(ipaddress.ip_address(entry[4][0]).is_loopback for entry in found)


def warn_if_not_loopback(variable: str, address: str) -> None:
    """Log one warning when ``address`` (the value of ``variable``) is reachable from outside."""
    if not is_loopback(address):
        log.warning(
            "%s=%s listens beyond this machine (not a loopback address): anyone who can reach "
            "it can call the API; use 127.0.0.1:PORT unless that is what you want",
            variable,
            address,
        )


class CannotListenError(Exception):
    """A server cannot listen on the address a setting names; the message says which and why."""

    def __init__(self, variable: str, address: str, reason: str) -> None:
        super().__init__(f"{variable}={address}: {reason}")


def why_not(error: OSError) -> str:
    """What a failed bind means for the user, in a few words."""
    if isinstance(error, socket.gaierror):
        return f"the host is unknown ({error.strerror})"
    reasons = {
        errno.EADDRINUSE: "the address is already in use by another process",
        errno.EADDRNOTAVAIL: "no network interface of this machine has that address",
        errno.EACCES: "permission denied (ports below 1024 need privileges)",
    }
    if error.errno in reasons:
        return reasons[error.errno]
    return (error.strerror or str(error)).lower()


def split_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as the host, brackets removed, and the port."""
    host, _, port = address.rpartition(":")
    return host.removeprefix("[").removesuffix("]"), int(port)


def probe_bind(address: str, *, reuse_port: bool) -> None:
    """Bind ``address`` for a moment as a server would, raising ``OSError`` if it cannot.

    A server library that reports a failed bind without its cause (grpc) is asked after
    this says yes. With ``reuse_port`` the probe shares the port as such a server would,
    so it fails only where that server would.
    """
    host, port = split_address(address)
    if port == 0:
        return  # any free port: nothing to collide with
    found = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    for family, kind, protocol, _, where in found:
        with socket.socket(family, kind, protocol) as probe:
            # As servers do: a port whose last connections linger in TIME_WAIT is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            probe.bind(where)
