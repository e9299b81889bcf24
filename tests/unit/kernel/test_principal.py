from __future__ import annotations

import asyncio

from ledgerd.kernel.principal import (
    ALL_LEDGERS,
    Principal,
    current_principal,
    principal_scope,
)


def test_a_principal_uses_only_its_granted_ledgers_and_scopes() -> None:
    principal = Principal("c1", frozenset({"ledger.read"}), frozenset({"a", "b"}))
    assert principal.may_use_ledger("a")
    assert not principal.may_use_ledger("c")
    assert principal.has_scope("ledger.read")
    assert not principal.has_scope("ledger.write")


def test_the_all_ledgers_grant_covers_any_ledger_id() -> None:
    admin = Principal("admin", frozenset(), ALL_LEDGERS)
    assert admin.ledgers is ALL_LEDGERS
    assert admin.may_use_ledger("anything")


async def test_the_current_principal_is_the_scope_s_inside_it_and_its_tasks_only() -> None:
    caller = Principal("c1", frozenset({"ledger.read"}), frozenset({"a"}))
    assert current_principal() is None
    with principal_scope(caller):
        assert current_principal() is caller
        assert await asyncio.create_task(_seen()) is caller
    assert current_principal() is None


async def _seen() -> Principal | None:
    return current_principal()
