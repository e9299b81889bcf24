"""UpdateAccountMetadata and BatchGetBalances over REST, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from tests.e2e.rest.support import Ledger, RestApi, balance, ok, pay, problem, rfc3339

L = "shop"


async def _books(api: RestApi) -> Ledger:
    ledger = Ledger(api.client, L)
    await ledger.create("Shop")
    await ledger.open("bank")
    await ledger.open("alice", metadata={"tier": "gold", "n": "1"})
    await ledger.open("bob")
    return ledger


async def test_metadata_is_changed_at_the_version_read_and_listed_by_it(rest_api: RestApi) -> None:
    ledger = await _books(rest_api)
    read = await ledger.account("alice")
    path = f"{ledger.path}/accounts/alice:updateMetadata"

    updated = ok(
        await rest_api.client.post(
            path,
            json={
                "metadata": {"tier": "silver", "owner": "ops"},
                "remove_keys": ["n", "absent"],
                "expected_version": read["version"],
            },
        )
    )
    stale = problem(
        await rest_api.client.post(
            path, json={"metadata": {"tier": "x"}, "expected_version": read["version"]}
        ),
        409,
        "CONCURRENCY_CONFLICT",
    )
    unchanged = ok(await rest_api.client.post(path, json={"metadata": {"owner": "ops"}}))
    listed = ok(
        await rest_api.client.get(f"{ledger.path}/accounts", params={"metadata": "tier=silver"})
    )

    assert updated["metadata"] == {"tier": "silver", "owner": "ops"}
    assert int(updated["version"]) == int(read["version"]) + 1
    assert stale["details"] == {
        "account": "alice",
        "expected_version": read["version"],
        "actual_version": updated["version"],
    }
    assert unchanged == updated  # nothing to change: same version
    assert listed["accounts"] == [updated]


async def test_balances_of_many_accounts_in_the_order_asked(rest_api: RestApi) -> None:
    ledger = await _books(rest_api)
    await ledger.posted(pay("p1", "bank", "bob", 70))
    before = rfc3339(rest_api.clock.advance(timedelta(seconds=1)))
    rest_api.clock.advance(timedelta(seconds=1))
    await ledger.posted(pay("p2", "bob", "alice", 20))
    path = f"{ledger.path}/balances:batchGet"

    now = ok(await rest_api.client.get(path, params={"accounts": ["bob", "alice", "bob", "bank"]}))
    then = ok(
        await rest_api.client.get(path, params={"accounts": ["alice", "bob"], "as_of": before})
    )

    assert [(one["account"], one["balance"]) for one in now["balances"]] == [
        ("bob", balance(20, 70, available=50)),
        ("alice", balance(0, 20, available=20)),
        ("bob", balance(20, 70, available=50)),
        ("bank", balance(70, 0, available=-70)),
    ]
    assert then["balances"] == [
        {
            "ledger": L,
            "account": "alice",
            "asset": "USD/2",
            "balance": balance(available=0),
            "as_of": before,
        },
        await ledger.balance("bob", as_of=before),
    ]
