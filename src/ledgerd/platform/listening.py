"""Whether a listen address (``HOST:PORT``) is reachable from this machine only.

An empty host (``:0``), ``0.0.0.0`` or ``[::]`` listens on every interface: the server answers
anyone who can reach the machine. Deployments need that, so it stays allowed, but it should be
a choice, not an accident: binding anything but a loopback address logs a warning.
"""

from __future__ import annotations

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
