"""The ledger's whole lifecycle over HTTP with httpx, on SQLite and PostgreSQL, in both gateways.

Ledgers and accounts, transfers and batches, holds (captured in full or in part, voided),
reversals, and every way of reading it back: a transfer, transfer and account listings,
balances now and in the past, statements a page at a time and as an NDJSON export. Along the
way the proto3 JSON rules: proto field names, 64-bit integers printed as strings and accepted
as strings or numbers, enums by name, RFC 3339 timestamps.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from tests.e2e.rest.support import (
    NDJSON_TYPE,
    JsonObject,
    Ledger,
    RestApi,
    balance,
    leg,
    ok,
    pay,
    problem,
    rfc3339,
    transfer_input,
)
from tests.integration.conftest import EPOCH

L = "shop"
WAIT_S = 30.0  # a bound for the test to fail rather than hang, not a measurement
USD = "USD/2"
FUNDED: JsonObject = {"debits_must_not_exceed_credits": True}
PLUS_TWO = timezone(timedelta(hours=2))
ACCOUNT_FIELDS = {
    "id",
    "ledger",
    "asset",
    "flags",
    "status",
    "metadata",
    "balance",
    "created_at",
    "version",
}
# What a posted transfer prints: every field without presence, and no `pending`/`expires_at`.
TRANSFER_FIELDS = {
    "id",
    "ledger",
    "idempotency_key",
    "legs",
    "kind",
    "status",
    "metadata",
    "created_at",
    "target_id",
    "sequence",
    "hash",
    "prev_hash",
}
ENTRY_FIELDS = {
    "account",
    "sequence",
    "transfer_id",
    "transfer_sequence",
    "leg_index",
    "side",
    "layer",
    "amount",
    "balance_after",
    "created_at",
}
# Legs per transfer and transfers per batch that give one account more entries than the
# server reads per page (1000) while exporting a statement.
LEGS = 64
LEG_BATCHES = 19
MORE_THAN_A_PAGE = LEGS * LEG_BATCHES


async def _books(api: RestApi) -> Ledger:
    """Ledger ``shop``: an unconstrained ``bank``, and ``alice`` and ``bob`` who stay funded."""
    ledger = Ledger(api.client, L)
    await ledger.create("Shop")
    await ledger.open("bank")
    await ledger.open("alice", flags=FUNDED)
    await ledger.open("bob", flags=FUNDED)
    return ledger


def _at(delta: timedelta) -> str:
    return rfc3339(EPOCH + delta)


async def test_ledgers_and_accounts_in_proto_json(rest_api: RestApi) -> None:
    client = rest_api.client
    created = ok(
        await client.post(
            "/v1/ledgers", json={"id": L, "name": "Shop", "metadata": {"region": "eu"}}
        )
    )
    assert created == {
        "id": L,
        "name": "Shop",
        "metadata": {"region": "eu"},
        "created_at": rfc3339(EPOCH),
    }
    # Creating it again with the same attributes returns it, even after time has moved on.
    rest_api.clock.advance(timedelta(hours=1))
    again = ok(
        await client.post(
            "/v1/ledgers", json={"id": L, "name": "Shop", "metadata": {"region": "eu"}}
        )
    )
    assert again == created
    assert ok(await client.get(f"/v1/ledgers/{L}")) == created

    # int64 fields are accepted as a string or as a number, and printed as strings.
    capped = ok(
        await client.post(
            f"/v1/ledgers/{L}/accounts",
            json={
                "id": "card",
                "asset": USD,
                "flags": {"credits_must_not_exceed_debits": True, "overdraft_limit": "250"},
                "metadata": {"tier": "gold"},
            },
        )
    )
    assert set(capped) == ACCOUNT_FIELDS
    assert capped == {
        "id": "card",
        "ledger": L,
        "asset": USD,
        "flags": {
            "debits_must_not_exceed_credits": False,
            "credits_must_not_exceed_debits": True,
            "overdraft_limit": "250",
        },
        "status": "OPEN",
        "metadata": {"tier": "gold"},
        "balance": balance(available=0),
        "created_at": _at(timedelta(hours=1)),
        "version": "0",
    }
    funded = ok(
        await client.post(
            f"/v1/ledgers/{L}/accounts",
            json={"id": "wallet", "asset": "JPY/0", "flags": {**FUNDED, "overdraft_limit": 100}},
        )
    )
    assert funded["flags"]["overdraft_limit"] == "100"
    assert funded["asset"] == "JPY/0"
    assert funded["metadata"] == {}
    assert ok(await client.get(f"/v1/ledgers/{L}/accounts/card")) == capped
    # Opening the same account twice returns it.
    reopened = await client.post(
        f"/v1/ledgers/{L}/accounts",
        json={
            "id": "card",
            "asset": USD,
            "flags": {"credits_must_not_exceed_debits": True, "overdraft_limit": 250},
            "metadata": {"tier": "gold"},
        },
    )
    assert ok(reopened) == capped


async def test_a_transfer_takes_int64_as_string_or_number_and_replays_by_key(
    rest_api: RestApi,
) -> None:
    ledger = await _books(rest_api)
    body = transfer_input(
        "fund-alice",
        leg("bank", "alice", "1000"),
        leg("bank", "bob", 250, USD),
        metadata={"order": "o-1"},
    )
    posted = await ledger.posted(body)
    assert set(posted) == TRANSFER_FIELDS
    assert len(posted["id"]) == 32
    assert posted["ledger"] == L
    assert posted["idempotency_key"] == "fund-alice"
    assert posted["legs"] == [
        {"debit_account": "bank", "credit_account": "alice", "amount": "1000", "asset": USD},
        {"debit_account": "bank", "credit_account": "bob", "amount": "250", "asset": USD},
    ]
    assert (posted["kind"], posted["status"]) == ("POSTING", "POSTED")
    assert posted["metadata"] == {"order": "o-1"}
    assert posted["created_at"] == rfc3339(EPOCH)
    assert posted["target_id"] == ""
    assert posted["sequence"] == "1"
    assert len(posted["hash"]) == len(posted["prev_hash"]) == 64

    # The same key with the same body, the amounts spelled the other way: the same transfer.
    replay = transfer_input(
        "fund-alice",
        leg("bank", "alice", 1000),
        leg("bank", "bob", "250", USD),
        metadata={"order": "o-1"},
    )
    assert await ledger.posted(replay) == posted
    assert await ledger.get_transfer(posted["id"]) == posted
    lookup = f"{ledger.path}/transfers:lookup"
    assert ok(await rest_api.client.get(lookup, params={"idempotency_key": "fund-alice"})) == (
        posted
    )
    missing = await rest_api.client.get(lookup, params={"idempotency_key": "fund-bob"})
    problem(missing, 404, "TRANSFER_NOT_FOUND")
    assert len(await ledger.all_transfers()) == 1
    assert (await ledger.balance("alice"))["balance"] == balance(
        posted_credits=1000, available=1000
    )
    assert await ledger.balance("bank") == {
        "ledger": L,
        "account": "bank",
        "asset": USD,
        "balance": balance(posted_debits=1250, available=-1250),
    }


async def test_batches_report_each_item_and_atomic_ones_are_all_or_nothing(
    rest_api: RestApi,
) -> None:
    ledger = await _books(rest_api)
    await ledger.posted(pay("fund", "bank", "alice", 100))
    items = [
        pay("b-1", "alice", "bob", 60),
        pay("b-2", "alice", "bob", 60),  # only 40 left: fails alone
        pay("b-3", "bank", "bob", "7"),
    ]
    results = (await ledger.batch(items))["results"]
    assert [set(result) for result in results] == [
        {"transfer", "replayed"},
        {"error", "replayed"},
        {"transfer", "replayed"},
    ]
    assert [result["replayed"] for result in results] == [False, False, False]
    assert results[1]["error"] == {
        "code": "INSUFFICIENT_FUNDS",
        "message": results[1]["error"]["message"],
        "details": {"account": "alice"},
    }
    first, third = results[0]["transfer"], results[2]["transfer"]
    assert (first["idempotency_key"], third["idempotency_key"]) == ("b-1", "b-3")
    assert third["legs"][0]["amount"] == "7"

    # Sent again: the posted items are replayed with their original ids.
    replayed = (await ledger.batch(items))["results"]
    assert [result["replayed"] for result in replayed] == [True, False, True]
    assert replayed[0]["transfer"] == first
    assert replayed[2]["transfer"] == third
    assert replayed[1]["error"]["code"] == "INSUFFICIENT_FUNDS"

    # An item that cannot be decoded fails in its place too; the JSON was well formed.
    undecodable = transfer_input("b-4", leg("bank", "bob", 1, asset="USD"))
    mixed = (await ledger.batch([pay("b-5", "bank", "bob", 2), undecodable]))["results"]
    assert mixed[0]["transfer"]["idempotency_key"] == "b-5"
    assert mixed[1]["error"]["details"] == {"field": "transfers[1].legs[0].asset"}
    assert (await ledger.balance("bob"))["balance"] == balance(posted_credits=69, available=69)

    before = await ledger.all_transfers()
    atomic = (
        await ledger.batch(
            [pay("a-1", "bank", "bob", 5), pay("a-2", "alice", "bob", 1_000)], atomic=True
        )
    )["results"]
    assert [result["error"]["code"] for result in atomic] == ["BATCH_ABORTED", "INSUFFICIENT_FUNDS"]
    assert [result["replayed"] for result in atomic] == [False, False]
    assert await ledger.all_transfers() == before
    assert (await ledger.balance("bob"))["balance"] == balance(posted_credits=69, available=69)

    # An atomic batch with nothing wrong posts everything.
    good = (
        await ledger.batch(
            [pay("a-1", "bank", "bob", 5), pay("a-3", "bob", "alice", 1)], atomic=True
        )
    )["results"]
    assert [result["transfer"]["status"] for result in good] == ["POSTED", "POSTED"]
    assert len(await ledger.all_transfers()) == len(before) + 2


async def test_holds_captured_in_full_or_in_part_voided_and_reversed(rest_api: RestApi) -> None:
    ledger = await _books(rest_api)
    hold = await ledger.posted(
        transfer_input("h-1", leg("bank", "alice", 500), hold=True, timeout_s="60")
    )
    assert set(hold) == TRANSFER_FIELDS | {"pending", "expires_at"}
    assert (hold["kind"], hold["status"]) == ("HOLD", "PENDING")
    assert hold["pending"] == {"timeout_seconds": "60"}
    assert hold["expires_at"] == _at(timedelta(seconds=60))
    assert (await ledger.balance("alice"))["balance"] == balance(pending_credits=500, available=0)

    # Full capture, under the default key "capture/<hold>": retrying it is a replay.
    captured = await ledger.act(hold["id"], "capture")
    assert (captured["kind"], captured["status"]) == ("CAPTURE", "POSTED")
    assert captured["target_id"] == hold["id"]
    assert captured["idempotency_key"] == f"capture/{hold['id']}"
    assert captured["legs"][0]["amount"] == "500"
    assert await ledger.act(hold["id"], "capture") == captured
    assert (await ledger.get_transfer(hold["id"]))["status"] == "CAPTURED"
    assert (await ledger.balance("alice"))["balance"] == balance(posted_credits=500, available=500)

    # Partial captures: the amount as a string, then as a number; the rest is released.
    by_string = await ledger.posted(transfer_input("h-2", leg("alice", "bob", 200), hold=True))
    assert by_string["pending"] == {"timeout_seconds": "0"}
    assert "expires_at" not in by_string
    part = await ledger.act(
        by_string["id"], "capture", {"amount": "30", "metadata": {"reason": "partial"}}
    )
    assert part["legs"][0]["amount"] == "30"
    assert part["metadata"] == {"reason": "partial"}
    by_number = await ledger.posted(transfer_input("h-3", leg("alice", "bob", 100), hold=True))
    part = await ledger.act(by_number["id"], "capture", {"amount": 25, "idempotency_key": "cap-3"})
    assert (part["legs"][0]["amount"], part["idempotency_key"]) == ("25", "cap-3")
    for held in (by_string, by_number):
        assert (await ledger.get_transfer(held["id"]))["status"] == "CAPTURED"

    voided_hold = await ledger.posted(transfer_input("h-4", leg("alice", "bob", 50), hold=True))
    assert (await ledger.balance("alice"))["balance"] == balance(
        posted_debits=55, posted_credits=500, pending_debits=50, available=395
    )
    void = await ledger.act(voided_hold["id"], "void")
    assert (void["kind"], void["target_id"]) == ("VOID", voided_hold["id"])
    assert (await ledger.get_transfer(voided_hold["id"]))["status"] == "VOIDED"

    payment = await ledger.posted(pay("p-1", "alice", "bob", 10))
    reversal = await ledger.act(payment["id"], "reverse", {"metadata": {"why": "refund"}})
    assert (reversal["kind"], reversal["status"]) == ("REVERSAL", "POSTED")
    assert reversal["target_id"] == payment["id"]
    assert reversal["legs"] == [
        {"debit_account": "bob", "credit_account": "alice", "amount": "10", "asset": USD}
    ]
    assert await ledger.act(payment["id"], "reverse", {"metadata": {"why": "refund"}}) == reversal
    assert (await ledger.get_transfer(payment["id"]))["status"] == "REVERSED"

    assert (await ledger.balance("alice"))["balance"] == balance(
        posted_debits=65, posted_credits=510, available=445
    )
    assert (await ledger.balance("bob"))["balance"] == balance(
        posted_debits=10, posted_credits=65, available=55
    )


async def test_transfers_listed_by_account_and_time_a_page_at_a_time(rest_api: RestApi) -> None:
    ledger = await _books(rest_api)
    clock = rest_api.clock
    ids: list[str] = []
    for index, (debit, credit) in enumerate(
        [("bank", "alice"), ("bank", "bob"), ("alice", "bob"), ("bank", "bob"), ("bank", "alice")]
    ):
        ids.append((await ledger.posted(pay(f"t-{index}", debit, credit, 10)))["id"])
        clock.advance(timedelta(minutes=1))

    everything = await ledger.pages("/transfers", "transfers", {"page_size": 2})
    assert [len(page) for page in everything] == [2, 2, 1]
    listed = [item for page in everything for item in page]
    assert [item["id"] for item in listed] == ids
    assert [item["sequence"] for item in listed] == ["1", "2", "3", "4", "5"]

    # alice's transfers from minute 1 on (given with a +02:00 offset), a page of one at a time.
    since = (EPOCH + timedelta(minutes=1)).astimezone(PLUS_TWO)
    pages = await ledger.pages(
        "/transfers",
        "transfers",
        {"account": "alice", "start_time": since.isoformat(), "page_size": 1},
    )
    assert [[item["id"] for item in page] for page in pages] == [[ids[2]], [ids[4]]]
    window = await ledger.pages(
        "/transfers",
        "transfers",
        {
            "account": "bob",
            "start_time": _at(timedelta(minutes=1)),
            "end_time": _at(timedelta(minutes=3)),
            "page_size": "10",
        },
    )
    assert [[item["id"] for item in page] for page in window] == [[ids[1], ids[2]]]


async def test_transfers_listed_by_kind_and_status_named_in_the_query_string(
    rest_api: RestApi,
) -> None:
    ledger = await _books(rest_api)
    await ledger.posted(pay("fund", "bank", "alice", 100))
    holds = [
        await ledger.posted(transfer_input(f"hold-{n}", leg("alice", "bob", 10), hold=True))
        for n in range(3)
    ]
    capture = await ledger.act(holds[0]["id"], "capture")
    await ledger.act(holds[2]["id"], "void")

    async def listed(query: str) -> list[str]:
        page = ok(await rest_api.client.get(f"/v1/ledgers/{L}/transfers?{query}"))
        return [transfer["id"] for transfer in page["transfers"]]

    # The open holds, by the enums' names as the JSON mapping spells them.
    assert await listed("kind=HOLD&status=PENDING") == [holds[1]["id"]]
    assert await listed("kind=HOLD") == [hold["id"] for hold in holds]
    assert await listed("status=CAPTURED") == [holds[0]["id"]]
    assert await listed("kind=CAPTURE&account=bob") == [capture["id"]]
    assert await listed("kind=HOLD&status=PENDING&account=bank") == []
    pages = await ledger.pages("/transfers", "transfers", {"kind": "HOLD", "page_size": 2})
    assert [[item["id"] for item in page] for page in pages] == [
        [holds[0]["id"], holds[1]["id"]],
        [holds[2]["id"]],
    ]
    # A name that is no kind (or status) is the client's mistake, named as its parameter.
    for query, field in [("kind=HOLDS", "kind"), ("status=open", "status"), ("kind=2", "kind")]:
        refusal = problem(
            await rest_api.client.get(f"/v1/ledgers/{L}/transfers?{query}"),
            400,
            "VALIDATION_FAILED",
        )
        assert refusal["details"] == {"field": field}, refusal
        assert refusal["message"].startswith(f"{field}: must be one of "), refusal
        assert "HOLD" in refusal["message"] or "PENDING" in refusal["message"], refusal


async def test_ledgers_listed_a_page_at_a_time(rest_api: RestApi) -> None:
    client = rest_api.client
    assert ok(await client.get("/v1/ledgers")) == {"ledgers": [], "next_page_token": ""}
    for ledger_id in ("l-c", "l-a", "l-b"):
        await Ledger(client, ledger_id).create(f"Ledger {ledger_id}")

    first = ok(await client.get("/v1/ledgers?page_size=2"))
    assert [ledger["id"] for ledger in first["ledgers"]] == ["l-a", "l-b"]
    assert set(first["ledgers"][0]) == {"id", "name", "metadata", "created_at"}
    assert first["ledgers"][0]["name"] == "Ledger l-a"
    token = first["next_page_token"]
    last = ok(await client.get("/v1/ledgers", params={"page_size": 2, "page_token": token}))
    assert ([ledger["id"] for ledger in last["ledgers"]], last["next_page_token"]) == (["l-c"], "")
    problem(await client.get("/v1/ledgers?page_size=1001"), 400, "VALIDATION_FAILED")
    problem(await client.get("/v1/ledgers?page_token=nope"), 400, "VALIDATION_FAILED")


async def test_accounts_listed_by_metadata_a_page_at_a_time(rest_api: RestApi) -> None:
    ledger = Ledger(rest_api.client, L)
    await ledger.create()
    tiers = {
        "a1": {"tier": "gold", "region": "eu"},
        "a2": {"tier": "silver", "region": "eu"},
        "a3": {"tier": "gold", "region": "us"},
        "a4": {"tier": "gold", "region": "eu"},
        "a5": {},
    }
    for account, metadata in tiers.items():
        await ledger.open(account, metadata=metadata)

    # As the brief writes it, `=` unescaped inside the value.
    first = ok(
        await rest_api.client.get(f"/v1/ledgers/{L}/accounts?metadata=tier=gold&page_size=2")
    )
    assert [account["id"] for account in first["accounts"]] == ["a1", "a3"]
    assert first["next_page_token"]
    gold = await ledger.pages("/accounts", "accounts", {"metadata": "tier=gold", "page_size": 2})
    assert [[account["id"] for account in page] for page in gold] == [["a1", "a3"], ["a4"]]
    assert gold[0] == first["accounts"]
    both = await ledger.pages(
        "/accounts", "accounts", {"metadata": ["tier=gold", "region=eu"], "page_size": 1}
    )
    assert [[account["id"] for account in page] for page in both] == [["a1"], ["a4"]]
    every = await ledger.pages("/accounts", "accounts", {})
    assert [account["id"] for account in every[0]] == ["a1", "a2", "a3", "a4", "a5"]


async def test_balance_as_of_an_rfc3339_instant(rest_api: RestApi) -> None:
    ledger = await _books(rest_api)
    await ledger.posted(pay("fund", "bank", "alice", 1_000))
    rest_api.clock.advance(timedelta(hours=1))
    await ledger.posted(pay("spend", "alice", "bob", 300))
    await ledger.posted(transfer_input("hold", leg("alice", "bob", 50), hold=True))

    half_past = EPOCH + timedelta(minutes=30)
    then = await ledger.balance("alice", as_of=rfc3339(half_past))
    assert then == {
        "ledger": L,
        "account": "alice",
        "asset": USD,
        "balance": balance(posted_credits=1_000, available=1_000),
        "as_of": rfc3339(half_past),
    }
    # Another spelling of the same instant: an offset; it is echoed in UTC.
    offset = half_past.astimezone(PLUS_TWO).isoformat()
    assert await ledger.balance("alice", as_of=offset) == then
    before = await ledger.balance("alice", as_of="2000-01-01T00:00:00Z")
    assert before["balance"] == balance(available=0)
    assert before["as_of"] == "2000-01-01T00:00:00Z"
    # Finer than a microsecond: echoed to the nanosecond, not as the microsecond it falls in.
    finer = await ledger.balance("alice", as_of="2000-01-01T00:00:00.000000001Z")
    assert finer["as_of"] == "2000-01-01T00:00:00.000000001Z"
    now = await ledger.balance("alice")
    assert "as_of" not in now
    assert now["balance"] == balance(
        posted_debits=300, posted_credits=1_000, pending_debits=50, available=650
    )
    later = await ledger.balance("alice", as_of=_at(timedelta(days=1)))
    assert later["balance"] == now["balance"]


async def test_entries_a_page_at_a_time(rest_api: RestApi) -> None:
    ledger = await _books(rest_api)
    fund = await ledger.posted(pay("fund", "bank", "alice", 100))
    hold = await ledger.posted(transfer_input("hold", leg("alice", "bob", 40), hold=True))
    await ledger.act(hold["id"], "void")
    await ledger.posted(transfer_input("two", leg("alice", "bob", 5), leg("bank", "alice", 7)))

    pages = await ledger.pages("/accounts/alice/entries", "entries", {"page_size": 2})
    assert [len(page) for page in pages] == [2, 2, 1]
    entries = [entry for page in pages for entry in page]
    assert entries == await ledger.entries("alice")
    for entry in entries:
        assert set(entry) == ENTRY_FIELDS
        assert entry["account"] == "alice"
        assert isinstance(entry["leg_index"], int)  # int32: a JSON number
        assert entry["created_at"] == rfc3339(EPOCH)
    assert [entry["sequence"] for entry in entries] == ["1", "2", "3", "4", "5"]
    assert entries[0] == {
        "account": "alice",
        "sequence": "1",
        "transfer_id": fund["id"],
        "transfer_sequence": "1",
        "leg_index": 0,
        "side": "CREDIT",
        "layer": "POSTED",
        "amount": "100",
        "balance_after": balance(posted_credits=100, available=100),
        "created_at": rfc3339(EPOCH),
    }
    # The hold and its release: a pending debit, then the same amount negative.
    assert [(e["side"], e["layer"], e["amount"]) for e in entries[1:3]] == [
        ("DEBIT", "PENDING", "40"),
        ("DEBIT", "PENDING", "-40"),
    ]
    assert [(e["side"], e["leg_index"], e["amount"]) for e in entries[3:]] == [
        ("DEBIT", 0, "5"),
        ("CREDIT", 1, "7"),
    ]
    assert entries[-1]["balance_after"] == balance(
        posted_debits=5, posted_credits=107, available=102
    )


async def test_entries_in_a_time_range_a_page_at_a_time(rest_api: RestApi) -> None:
    ledger = await _books(rest_api)
    for minute in range(4):  # alice's entries 1..4, a minute apart, then 5 and 6 at minute 3
        await ledger.posted(pay(f"fund-{minute}", "bank", "alice", 10 + minute))
        if minute < 3:
            rest_api.clock.advance(timedelta(minutes=1))
    await ledger.posted(transfer_input("two", leg("bank", "alice", 1), leg("bank", "alice", 2)))

    async def window(**params: str | int) -> list[list[str]]:
        pages = await ledger.pages("/accounts/alice/entries", "entries", dict(params))
        return [[entry["sequence"] for entry in page] for page in pages]

    since = (EPOCH + timedelta(minutes=1)).astimezone(PLUS_TWO).isoformat()
    assert await window(start_time=since) == [["2", "3", "4", "5", "6"]]
    assert await window(start_time=since, end_time=_at(timedelta(minutes=3))) == [["2", "3"]]
    assert await window(end_time=_at(timedelta(minutes=1))) == [["1"]]
    # Pages of a window follow the account sequence, in a range of one instant too.
    assert await window(start_time=_at(timedelta(minutes=3)), page_size=1) == [["4"], ["5"], ["6"]]
    assert await window(start_time=_at(timedelta(minutes=9))) == [[]]
    swapped = await rest_api.client.get(
        f"/v1/ledgers/{L}/accounts/alice/entries",
        params={"start_time": _at(timedelta(minutes=2)), "end_time": _at(timedelta(minutes=1))},
    )
    refusal = problem(swapped, 400, "VALIDATION_FAILED")
    assert refusal["details"] == {"field": "end_time"}
    assert "must not be before start_time" in refusal["message"]


async def _export(
    api: RestApi, account: str, after_sequence: int | None = None
) -> list[JsonObject]:
    """The statement export: NDJSON, every line one JSON Entry."""
    query = "" if after_sequence is None else f"?after_sequence={after_sequence}"
    response = await api.client.get(f"/v1/ledgers/{L}/accounts/{account}/statement:export{query}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == NDJSON_TYPE
    assert response.headers["x-request-id"]
    # One object per line, each line ending in a newline; an empty statement is an empty body.
    assert response.text == "" or response.text.endswith("\n")
    lines = response.text.split("\n")[:-1]
    entries = [json.loads(line) for line in lines]
    assert all(isinstance(entry, dict) and set(entry) == ENTRY_FIELDS for entry in entries)
    return entries


async def test_statement_export_is_ndjson_entries(rest_api: RestApi) -> None:
    ledger = await _books(rest_api)
    await ledger.posted(pay("fund", "bank", "alice", 100))
    await ledger.posted(transfer_input("hold", leg("alice", "bob", 40), hold=True))
    exported = await _export(rest_api, "alice")
    assert exported == await ledger.entries("alice")
    assert len(exported) == 2
    # An account without entries exports nothing, successfully.
    await ledger.open("idle")
    assert await _export(rest_api, "idle") == []


async def test_statement_export_of_more_entries_than_a_page(rest_api: RestApi) -> None:
    ledger = await _books(rest_api)
    legs = [leg("bank", "alice", 1 + index) for index in range(LEGS)]
    results = (
        await ledger.batch(
            [transfer_input(f"many-{batch}", *legs) for batch in range(LEG_BATCHES)], atomic=True
        )
    )["results"]
    assert all("transfer" in result for result in results)
    exported = await _export(rest_api, "alice")
    assert len(exported) == MORE_THAN_A_PAGE > 1000
    assert [entry["sequence"] for entry in exported] == [
        str(number) for number in range(1, MORE_THAN_A_PAGE + 1)
    ]
    assert exported == await ledger.entries("alice")
    total = LEG_BATCHES * sum(range(1, LEGS + 1))
    assert exported[-1]["balance_after"] == balance(posted_credits=total, available=total)


async def test_a_cut_statement_export_resumes_after_the_last_line_received(
    rest_api: RestApi,
) -> None:
    ledger = await _books(rest_api)
    legs = [leg("bank", "alice", 1 + index) for index in range(LEGS)]
    await ledger.batch(
        [transfer_input(f"many-{batch}", *legs) for batch in range(LEG_BATCHES)], atomic=True
    )
    whole = await ledger.entries("alice")
    path = f"/v1/ledgers/{L}/accounts/alice/statement:export"
    # A cut past the server's first page of 1000, so the rest starts inside its second.
    cut_at = 1003
    received: list[JsonObject] = []
    async with rest_api.client.stream("GET", path) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            received.append(json.loads(line))
            if len(received) == cut_at:
                break  # the connection is dropped with the rest unread

    resumed = await _export(rest_api, "alice", after_sequence=int(received[-1]["sequence"]))

    assert len(resumed) == len(whole) - cut_at
    assert received + resumed == whole  # nothing missed, nothing twice


async def test_statement_export_after_a_sequence(rest_api: RestApi) -> None:
    ledger = await _books(rest_api)
    for n in range(3):
        await ledger.posted(pay(f"fund-{n}", "bank", "alice", 10 + n))
    whole = await _export(rest_api, "alice")

    assert await _export(rest_api, "alice", after_sequence=0) == whole
    assert await _export(rest_api, "alice", after_sequence=2) == whole[2:]
    assert await _export(rest_api, "alice", after_sequence=3) == []  # beyond the last: empty
    assert await _export(rest_api, "alice", after_sequence=2**63 - 1) == []
    negative = await rest_api.client.get(
        f"/v1/ledgers/{L}/accounts/alice/statement:export?after_sequence=-1"
    )
    assert problem(negative, 400, "VALIDATION_FAILED")["details"] == {"field": "after_sequence"}


async def test_freeze_unfreeze_close(rest_api: RestApi) -> None:
    ledger = await _books(rest_api)
    await ledger.posted(pay("fund", "bank", "alice", 100))
    frozen = await ledger.status("bob", "freeze")
    assert frozen["status"] == "FROZEN"
    assert int(frozen["version"]) > 0
    assert await ledger.account("bob") == frozen
    problem(await ledger.post(pay("to-bob", "alice", "bob", 10)), 422, "ACCOUNT_FROZEN")

    thawed = await ledger.status("bob", "unfreeze")
    assert thawed["status"] == "OPEN"
    assert int(thawed["version"]) > int(frozen["version"])
    await ledger.posted(pay("to-bob", "alice", "bob", 10))

    await ledger.open("spare")
    closed = await ledger.status("spare", "close")
    assert closed["status"] == "CLOSED"
    assert (await ledger.account("spare"))["status"] == "CLOSED"
    problem(await ledger.post(pay("to-spare", "bank", "spare", 1)), 422, "ACCOUNT_CLOSED")
    assert (await ledger.balance("bob"))["balance"] == balance(posted_credits=10, available=10)


def test_rfc3339_prints_like_the_proto3_json_mapping() -> None:
    """The clock starts at an instant whose printing shows any loss of precision."""
    assert EPOCH.microsecond % 1000 != 0
    assert rfc3339(EPOCH) == "2030-01-02T03:04:05.123456Z"
    assert rfc3339(datetime(2030, 1, 1, tzinfo=UTC)) == "2030-01-01T00:00:00Z"


async def test_a_client_gone_mid_export_ends_it_without_a_warning_per_line(
    rest_api: RestApi, caplog: pytest.LogCaptureFixture
) -> None:
    # `curl …statement:export | head -2` (README's tour): the client goes after two lines.
    # The export wrote on, line after line, without giving the event loop a turn in which to
    # learn that the connection was gone: asyncio warned "socket.send() raised exception." for
    # every line written to the dead socket (about fifty with the demo ledger).
    ledger = await _books(rest_api)
    legs = [leg("bank", "alice", 1 + index) for index in range(LEGS)]
    await ledger.batch(
        [transfer_input(f"many-{batch}", *legs) for batch in range(LEG_BATCHES)], atomic=True
    )
    url = httpx.URL(str(rest_api.client.base_url))
    assert url.host is not None
    assert url.port is not None
    caplog.set_level(logging.INFO)
    path = f"/v1/ledgers/{L}/accounts/alice/statement:export"
    # In a thread, so that it reads and goes while the server, in this loop, is writing.
    await asyncio.to_thread(_read_two_lines_and_reset, url.host, url.port, path)
    async with asyncio.timeout(WAIT_S):  # until the gateway has logged the call's end
        while not any(path in record.getMessage() for record in caplog.records):  # noqa: ASYNC110 - caplog has no event to wait on
            await asyncio.sleep(0.05)
    send_warnings = [r for r in caplog.records if "socket.send() raised" in r.getMessage()]
    assert send_warnings == []


def _read_two_lines_and_reset(host: str, port: int, path: str) -> None:
    with socket.create_connection((host, port), timeout=WAIT_S) as client:
        client.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        received = b""
        while received.count(b"\n{") < 2:
            chunk = client.recv(100)
            assert chunk, "the server closed the connection first"
            received += chunk
        # Reset, not a polite close: the server's next write fails at once, as after SIGPIPE.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
