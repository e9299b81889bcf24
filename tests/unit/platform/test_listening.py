"""Listen addresses: which reach beyond this machine, and the warning when one does."""

from __future__ import annotations

import logging

import pytest

from ledgerd.platform.listening import is_loopback, warn_if_not_loopback


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
