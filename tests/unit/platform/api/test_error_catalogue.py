"""The error catalogue: one table per context, every spelling once."""

from __future__ import annotations

from enum import StrEnum

import pytest

from ledgerd.kernel.errors import ErrorCode
from ledgerd.platform.api.errors import (
    NOT_FOUND,
    REFUSED,
    SHARED_ERRORS,
    ErrorCatalogue,
    ErrorCodeClashError,
    ErrorSpec,
)


class _Shop(StrEnum):
    ORDER_NOT_FOUND = "ORDER_NOT_FOUND"
    OUT_OF_STOCK = "OUT_OF_STOCK"


class _Rival(StrEnum):
    # The same spelling as the shop's, from another context.
    OUT_OF_STOCK = "OUT_OF_STOCK"
    WAREHOUSE_SHUT = "WAREHOUSE_SHUT"


SHOP = {
    _Shop.ORDER_NOT_FOUND: ErrorSpec(NOT_FOUND, "No order has that id."),
    _Shop.OUT_OF_STOCK: ErrorSpec(REFUSED, "Nothing left."),
}
RIVAL = {
    _Rival.OUT_OF_STOCK: ErrorSpec(REFUSED, "None in the warehouse."),
    _Rival.WAREHOUSE_SHUT: ErrorSpec(REFUSED, "Closed."),
}


def test_a_registered_code_is_found_by_value_and_by_spelling() -> None:
    catalogue = ErrorCatalogue()
    catalogue.register(SHOP)
    assert catalogue.transport(_Shop.OUT_OF_STOCK) == REFUSED
    assert catalogue.code_of("ORDER_NOT_FOUND") is _Shop.ORDER_NOT_FOUND
    assert catalogue.code_of("NO_SUCH_CODE") is None


def test_a_table_clashing_with_another_context_is_refused_whole() -> None:
    catalogue = ErrorCatalogue()
    catalogue.register(SHOP)
    with pytest.raises(ErrorCodeClashError, match="OUT_OF_STOCK"):
        catalogue.register(RIVAL)
    # Nothing of the refused table was registered, not even its codes that did not clash.
    assert catalogue.code_of("WAREHOUSE_SHUT") is None
    assert catalogue.code_of("OUT_OF_STOCK") is _Shop.OUT_OF_STOCK


def test_a_context_cannot_take_a_shared_spelling() -> None:
    class Sloppy(StrEnum):
        UNAVAILABLE = "UNAVAILABLE"

    catalogue = ErrorCatalogue()
    catalogue.register(SHARED_ERRORS)
    with pytest.raises(ErrorCodeClashError):
        catalogue.register({Sloppy.UNAVAILABLE: ErrorSpec(REFUSED, "no")})


def test_an_unregistered_code_has_no_transport() -> None:
    with pytest.raises(LookupError, match="ORDER_NOT_FOUND"):
        ErrorCatalogue().transport(_Shop.ORDER_NOT_FOUND)


def test_the_kernel_registers_every_shared_code() -> None:
    assert set(SHARED_ERRORS) == set(ErrorCode)
