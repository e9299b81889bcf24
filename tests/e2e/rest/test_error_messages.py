"""What a 400 or 405 says: the field as the client wrote it, in snake_case, and what is accepted.

Each case is one message a new user met (issue 12, item 6): protobuf's parser spoke of
``Message type "TransferInput"``, camelCase ``Available Fields`` and ``details.field="body"``;
the page size was called ``limit``; a missing idempotency key was a regex mismatch; a 405
printed a Python tuple. None of that may reach a client again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e.rest.support import RestApi, leg, problem

L = "books"
# Words of protobuf's parser and of Python that a client must never read.
INTERNALS = ("Message type", "Available Fields", "idempotencyKey", "debitAccount", "int()", "('")


def _transfer(**changes: object) -> dict[str, Any]:
    return {"idempotency_key": "k", "legs": [leg("bank", "alice", 1)], **changes}


@dataclass(frozen=True, slots=True)
class Case:
    what: str  # what the client did
    method: str
    path: str
    payload: dict[str, Any]  # the JSON body, or the query of a GET
    field: str  # details.field, and the message's first words
    words: tuple[str, ...]  # what else the message must say


CASES = [
    Case(
        "an unknown field in a leg",
        "POST",
        f"/v1/ledgers/{L}/transfers",
        _transfer(legs=[{**leg("bank", "alice", 1), "memo": "x"}]),
        "legs[0].memo",
        ("not a field", "debit_account, credit_account, amount, asset"),
    ),
    Case(
        "an unknown field in a transfer",
        "POST",
        f"/v1/ledgers/{L}/transfers",
        _transfer(memo="x"),
        "memo",
        ("not a field", "idempotency_key, legs, pending, metadata"),
    ),
    Case(
        "an unknown field in a ledger",
        "POST",
        "/v1/ledgers",
        {"id": "new", "colour": "red"},
        "colour",
        ("not a field", "id, name, metadata"),
    ),
    Case(
        "an amount that is true",
        "POST",
        f"/v1/ledgers/{L}/transfers",
        _transfer(legs=[{**leg("bank", "alice", 1), "amount": True}]),
        "legs[0].amount",
        ("must be an integer",),
    ),
    Case(
        "an amount with a fraction",
        "POST",
        f"/v1/ledgers/{L}/transfers",
        _transfer(legs=[{**leg("bank", "alice", 1), "amount": 1.5}]),
        "legs[0].amount",
        ("must be an integer",),
    ),
    Case(
        "an amount past 64 bits",
        "POST",
        f"/v1/ledgers/{L}/transfers",
        _transfer(legs=[leg("bank", "alice", "9223372036854775808")]),
        "legs[0].amount",
        ("9223372036854775807",),
    ),
    Case(
        "legs an object",
        "POST",
        f"/v1/ledgers/{L}/transfers",
        _transfer(legs={"amount": 1}),
        "legs",
        ("must be a list",),
    ),
    Case(
        "pending a string",
        "POST",
        f"/v1/ledgers/{L}/transfers",
        _transfer(pending="yes"),
        "pending",
        ("must be an object", "timeout_seconds"),
    ),
    Case(
        "a metadata value that is a number",
        "POST",
        f"/v1/ledgers/{L}/transfers",
        _transfer(metadata={"n": 1}),
        "metadata.n",
        ("must be a string",),
    ),
    Case(
        "atomic a string",
        "POST",
        f"/v1/ledgers/{L}/transfers:batch",
        {"transfers": [], "atomic": "yes"},
        "atomic",
        ("true or false",),
    ),
    Case(
        "an unknown field in a batch's leg",
        "POST",
        f"/v1/ledgers/{L}/transfers:batch",
        {"transfers": [_transfer(legs=[{**leg("bank", "alice", 1), "memo": 1}])]},
        "transfers[0].legs[0].memo",
        ("not a field", "debit_account"),
    ),
    Case(
        "no idempotency key",
        "POST",
        f"/v1/ledgers/{L}/transfers",
        {"legs": [leg("bank", "alice", 1)]},
        "idempotency_key",
        ("is required",),
    ),
    Case(
        "page_size=abc", "GET", f"/v1/ledgers/{L}/transfers", {"page_size": "abc"}, "page_size", ()
    ),
    Case(
        "page_size=-1",
        "GET",
        f"/v1/ledgers/{L}/transfers",
        {"page_size": "-1"},
        "page_size",
        ("between 1 and 1000",),
    ),
    Case(
        "page_size past 32 bits",
        "GET",
        f"/v1/ledgers/{L}/transfers",
        {"page_size": str(2**31)},
        "page_size",
        ("between 1 and 1000",),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.what for case in CASES])
async def test_a_validation_message_names_the_field_as_written(
    local_api: RestApi, case: Case
) -> None:
    client = local_api.client
    await client.post("/v1/ledgers", json={"id": L})
    if case.method == "GET":
        response = await client.get(case.path, params=case.payload)
    else:
        response = await client.post(case.path, json=case.payload)
    body = problem(response, 400, "VALIDATION_FAILED")
    assert body["details"] == {"field": case.field}, body
    assert body["message"].startswith(f"{case.field}: "), body
    for word in case.words:
        assert word in body["message"], body
    for internal in INTERNALS:
        assert internal not in body["message"], body


async def test_a_405_says_the_allowed_methods_in_words_and_in_allow(local_api: RestApi) -> None:
    response = await local_api.client.delete(f"/v1/ledgers/{L}/transfers")
    body = problem(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["allow"] == "GET, HEAD, POST"
    assert body["message"] == (
        f"DELETE is not allowed on /v1/ledgers/{L}/transfers; use GET, HEAD or POST"
    )
