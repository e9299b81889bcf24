"""Listen addresses: who can reach one, the warning when others can, why one is refused."""

from __future__ import annotations

import logging
import socket

import pytest

from ledgerd.platform.listening import is_loopback, probe_bind, warn_if_not_loopback, why_not


@pytest.mark.parametrize(
    "address", ["127.0.0.1:0", "127.0.0.1:8080", "127.1.2.3:50051", "[::1]:0", "localhost:8080"]
)
def test_loopback_addresses_stay_on_this_machine(address: str) -> None:
    assert is_loopback(address)


@pytest.mark.parametrize(
    "address", [":0", ":8080", "0.0.0.0:0", "[::]:0", "10.1.2.3:8080", "[2001:db8::1]:50051"]
)
def test_every_interface_or_a_public_address_reaches_beyond_it(address: str) -> None:
    assert not is_loopback(address)


def test_a_non_loopback_address_is_warned_about_once_naming_the_variable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        warn_if_not_loopback("LEDGERD_HTTP_ADDRESS", "0.0.0.0:8080")
        warn_if_not_loopback("LEDGERD_GRPC_ADDRESS", "127.0.0.1:50051")
    assert [record.levelno for record in caplog.records] == [logging.WARNING]
    assert (
        caplog.records[0]
        .getMessage()
        .startswith("LEDGERD_HTTP_ADDRESS=0.0.0.0:8080 listens beyond this machine")
    )


def test_probing_an_address_a_socket_holds_says_it_is_in_use() -> None:
    with socket.create_server(("127.0.0.1", 0)) as holder:
        address = f"127.0.0.1:{holder.getsockname()[1]}"
        with pytest.raises(OSError, match="in use") as refused:
            probe_bind(address, reuse_port=False)
    assert why_not(refused.value) == "the address is already in use by another process"


def test_sharing_a_port_is_possible_only_where_every_holder_asked_for_it() -> None:
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        address = f"127.0.0.1:{holder.getsockname()[1]}"
        probe_bind(address, reuse_port=True)
        with pytest.raises(OSError, match="in use"):
            probe_bind(address, reuse_port=False)


def test_an_address_of_no_interface_is_named_as_such() -> None:
    with pytest.raises(OSError, match="assign") as refused:  # "Cannot assign requested address"
        probe_bind("192.0.2.1:8080", reuse_port=False)  # TEST-NET-1: on no machine
    assert why_not(refused.value) == "no network interface of this machine has that address"
