"""Ledger tenancy in the use cases: a caller sees the ledgers it was granted, and its creations.

The caller is the kernel's current principal, as the request pipeline's authentication sets it;
none (authentication not configured) sees every ledger. On the in-memory fakes.
"""

from __future__ import annotations

import pytest

from ledgerd.kernel.errors import LedgerdError
from ledgerd.kernel.principal import ALL_LEDGERS, LedgerGrant, Principal, principal_scope
from ledgerd.ledger.application.create_ledger import CreateLedger
from ledgerd.ledger.domain.errors import LedgerErrorCode
from tests.fakes.ledger_app import LedgerApp, make_ledger_app

LEDGERS = ("a", "b", "c", "d")


def _caller(ledgers: LedgerGrant) -> Principal:
    return Principal("client-1", frozenset({"ledgers.admin"}), ledgers)


@pytest.fixture
async def app() -> LedgerApp:
    app = make_ledger_app()
    for ledger_id in LEDGERS:
        await app.create_ledger(CreateLedger(ledger_id))
    return app


async def _listed(app: LedgerApp, limit: int = 2) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page = await app.queries.list_ledgers(cursor=cursor, limit=limit)
        pages.append([ledger.id for ledger in page.items])
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


async def test_without_a_principal_every_ledger_is_listed(app: LedgerApp) -> None:
    assert await _listed(app) == [["a", "b"], ["c", "d"]]


async def test_a_principal_lists_only_its_granted_ledgers_a_page_at_a_time(app: LedgerApp) -> None:
    with principal_scope(_caller(frozenset({"d", "b", "x", "a"}))):
        assert await _listed(app) == [["a", "b"], ["d"]]
    with principal_scope(_caller(frozenset())):
        assert await _listed(app) == [[]]
    with principal_scope(_caller(ALL_LEDGERS)):
        assert await _listed(app, limit=10) == [["a", "b", "c", "d"]]


async def test_creating_a_ledger_grants_it_to_its_creator_in_the_same_transaction(
    app: LedgerApp,
) -> None:
    assert app.tables.creator_grants == set()  # none made without a principal
    with principal_scope(_caller(frozenset())):
        await app.create_ledger(CreateLedger("e"))
    assert app.tables.creator_grants == {("client-1", "e")}
    assert "e" in app.tables.ledgers


async def test_a_creation_that_fails_grants_nothing(app: LedgerApp) -> None:
    with principal_scope(_caller(ALL_LEDGERS)), pytest.raises(LedgerdError) as caught:
        await app.create_ledger(CreateLedger("a", name="another"))
    assert caught.value.code is LedgerErrorCode.LEDGER_ALREADY_EXISTS
    assert app.tables.creator_grants == set()


async def test_a_ledger_of_others_is_taken_even_when_asked_for_as_it_is(app: LedgerApp) -> None:
    with principal_scope(_caller(frozenset({"b"}))):
        assert (await app.create_ledger(CreateLedger("b"))).id == "b"  # its own: idempotent
        with pytest.raises(LedgerdError) as caught:
            await app.create_ledger(CreateLedger("a"))  # same attributes, not its ledger
    assert caught.value.code is LedgerErrorCode.LEDGER_ALREADY_EXISTS
    assert caught.value.message == "ledger a already exists"  # not whether it is alike
    assert app.tables.creator_grants == set()  # granted nothing, neither its own again
