"""Which network addresses a delivery may connect to: public ones, and the networks allowed.

An API client chooses the URL its ledger's events are POSTed to; without a rule, it could make
the server call into the network the server sits in (a database's port, the cloud's metadata
service at 169.254.169.254, an internal admin page). So a delivery connects only to an address
that is *global* (Python's ``ipaddress``: not private, loopback, link-local, reserved, shared,
documentation, ...) and not multicast, or that is in one of the networks the operator allows
(``LEDGERD_WEBHOOKS_ALLOWED_NETWORKS``: an internal partner, a test's 127.0.0.0/8).

An IPv6 address that stands for an IPv4 one is judged as that IPv4 address too: an IPv4-mapped
``::ffff:127.0.0.1`` is 127.0.0.1 to the kernel, and the IPv4-compatible (``::/96``), 6to4
(``2002::/16``), NAT64 (``64:ff9b::/96``) and Teredo forms carry an IPv4 address a gateway may
deliver to; each such address must pass as itself and as the address it carries.

The policy is a value: the composition root builds it from the setting, and hands it to the
use cases (an IP-literal URL is refused at registration) and to the sender (which checks every
address it connects to, at connection time).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TypeAlias

Address: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_NETWORKS_SETTING = "LEDGERD_WEBHOOKS_ALLOWED_NETWORKS"
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def parse_networks(text: str) -> tuple[Network, ...]:
    """The networks of a comma-separated list of CIDRs (``10.1.0.0/16, fd00::/8``).

    An entry with host bits set (``10.1.2.3/16``) is refused rather than widened: what is
    allowed is exactly what is written. A bare address is a network of one.
    """
    networks: list[Network] = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=True))
        except ValueError as error:
            msg = (
                f"{entry!r} is not a network in CIDR notation (e.g. 10.0.0.0/8, fd00::/8): {error}"
            )
            raise ValueError(msg) from None
    return tuple(networks)


def _carried(address: Address) -> Address | None:
    """The IPv4 address an IPv6 ``address`` stands for or carries, if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):  # not ::, ::1
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Public unicast addresses, and those in ``allowed_networks``; nothing else."""

    allowed_networks: tuple[Network, ...] = ()

    def _allows_itself(self, address: Address) -> bool:
        if any(address in network for network in self.allowed_networks):
            return True
        return address.is_global and not address.is_multicast

    def allows(self, address: Address) -> bool:
        # An IPv4-mapped address is an IPv4 address on the wire: judged as that alone.
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            return self._allows_itself(address.ipv4_mapped)
        carried = _carried(address)
        return self._allows_itself(address) and (carried is None or self._allows_itself(carried))

    def refusal(self, address: Address) -> str | None:
        """None if a delivery may connect to ``address``; else why not."""
        if self.allows(address):
            return None
        return f"{address} is not a public address ({ALLOWED_NETWORKS_SETTING})"

    def refusal_of_literal(self, host: str) -> str | None:
        """For a URL's host: why it is refused if it is an IP address not allowed; else None.

        A host name is not resolved here (what it resolves to when a delivery connects is what
        counts, and is checked then).
        """
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return None
        return self.refusal(address)
