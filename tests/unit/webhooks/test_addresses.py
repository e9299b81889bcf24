"""Which addresses a delivery may connect to: public unicast ones, and the networks allowed."""

from __future__ import annotations

import ipaddress

import pytest

from ledgerd.kernel.errors import ErrorCode, LedgerdError
from ledgerd.webhooks.domain.addresses import AddressPolicy, parse_networks
from ledgerd.webhooks.domain.endpoints import check_url

DEFAULT = AddressPolicy()

NOT_PUBLIC = [
    "127.0.0.1",
    "127.5.6.7",
    "10.0.0.5",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # the cloud's metadata service
    "100.64.0.1",  # shared address space (carrier-grade NAT)
    "0.0.0.0",  # noqa: S104 - an address under test, not one listened on
    "255.255.255.255",
    "224.0.0.1",  # multicast
    "239.1.2.3",  # multicast, though is_global
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "ff02::1",  # multicast
    "::ffff:127.0.0.1",  # IPv4-mapped: 127.0.0.1 on the wire
    "::ffff:10.0.0.5",
    "::ffff:169.254.169.254",
    "::127.0.0.1",  # IPv4-compatible: is_global in Python 3.11, carries 127.0.0.1
    "2002:7f00:1::1",  # 6to4 carrying 127.0.0.1: is_global in Python 3.11
    "2002:a00:5::1",  # 6to4 carrying 10.0.0.5
    "64:ff9b::a00:5",  # NAT64 of 10.0.0.5: is_global in Python 3.11
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_an_address_that_is_not_public_unicast_is_refused_by_default(address: str) -> None:
    parsed = ipaddress.ip_address(address)
    refused = DEFAULT.refusal(parsed)
    assert refused == f"{parsed} is not a public address (LEDGERD_WEBHOOKS_ALLOWED_NETWORKS)"


@pytest.mark.parametrize("address", PUBLIC)
def test_a_public_address_is_allowed(address: str) -> None:
    assert DEFAULT.refusal(ipaddress.ip_address(address)) is None


def test_an_allowed_network_opens_its_addresses_and_no_others() -> None:
    policy = AddressPolicy(parse_networks(" 127.0.0.0/8, 10.1.0.0/16 ,fd00::/8,"))
    for address in ("127.0.0.1", "127.9.9.9", "10.1.200.3", "fd12::1", "::ffff:127.0.0.1"):
        assert policy.allows(ipaddress.ip_address(address)), address
    for address in ("10.2.0.1", "169.254.169.254", "::1", "192.168.0.1", "::ffff:10.2.0.1"):
        assert not policy.allows(ipaddress.ip_address(address)), address
    # Public addresses stay allowed.
    assert policy.allows(ipaddress.ip_address("8.8.8.8"))


def test_an_ipv6_form_of_an_ipv4_address_is_judged_by_the_ipv4_address_too() -> None:
    # An IPv4-mapped address is the IPv4 address itself; a NAT64 one is allowed only if the
    # IPv4 address it carries is.
    loopback = AddressPolicy(parse_networks("127.0.0.0/8"))
    assert loopback.allows(ipaddress.ip_address("::ffff:127.0.0.1"))
    assert loopback.allows(ipaddress.ip_address("64:ff9b::7f00:1"))
    assert not loopback.allows(ipaddress.ip_address("64:ff9b::a00:5"))
    assert not loopback.allows(ipaddress.ip_address("::ffff:10.0.0.5"))


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("10.0.0.0/33", "'10.0.0.0/33' is not a network"),
        ("10.0.0.1/8", "has host bits set"),
        ("localhost", "'localhost' is not a network"),
        ("127.0.0.0/8;10.0.0.0/8", "is not a network"),
        ("fd00::/129", "'fd00::/129' is not a network"),
    ],
)
def test_a_bad_network_is_refused_naming_it(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_networks(text)


def test_no_networks_is_the_default() -> None:
    assert parse_networks("") == ()
    assert parse_networks("127.0.0.1") == (ipaddress.ip_network("127.0.0.1/32"),)


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.5/admin",
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:5432/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
        "https://[fe80::1]/",
    ],
)
def test_a_url_whose_host_is_an_address_not_allowed_is_refused(url: str) -> None:
    with pytest.raises(LedgerdError) as refused:
        check_url(url, DEFAULT)
    assert refused.value.code is ErrorCode.VALIDATION_FAILED
    assert refused.value.details == {"field": "url"}
    assert refused.value.message.endswith(
        "is not a public address (LEDGERD_WEBHOOKS_ALLOWED_NETWORKS)"
    )


def test_a_host_name_is_not_resolved_at_registration() -> None:
    # What ``localhost`` resolves to is checked when a delivery connects.
    assert check_url("http://localhost:8080/x", DEFAULT) == "http://localhost:8080/x"
    assert check_url("https://8.8.8.8/x", DEFAULT) == "https://8.8.8.8/x"
    allowed = AddressPolicy(parse_networks("10.0.0.0/8"))
    assert check_url("http://10.0.0.5/admin", allowed) == "http://10.0.0.5/admin"
