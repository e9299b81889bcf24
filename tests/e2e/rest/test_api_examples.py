"""The request/response example of each operation, as /docs shows it, replayed for real.

The examples (``ledgerd.ledger.entrypoints.grpc.api_examples``, then the other contexts', as
the API reference shows them) are one story on a fresh server, in order, with a few calls of
their own set up in between (``SETUP``). Each answer must be the example's, but for the ids
the server makes up (32 hex digits; a stream ticket's 64 are random too): those must
correspond one to one (hashes too, as they cover the ids), and an id an answer gave is used in
the next examples' paths; an id a path names first is the one the setup call just made.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

import httpx

from ledgerd.kernel.rules import ApiExample
from ledgerd.main.api_docs import ledgerd_openapi
from ledgerd.main.bounded_context import merged_examples, services_of
from ledgerd.main.contexts import ENABLED_CONTEXTS
from tests.e2e.rest.support import JsonObject, RestApi

L = "/v1/ledgers/shop"
# Calls the story needs that no example shows, by the example they come before.
SETUP: dict[str, list[tuple[str, str, JsonObject]]] = {
    "PostTransfer": [
        ("POST", f"{L}/accounts", {"id": "bank", "asset": "USD/2"}),
        ("POST", f"{L}/accounts", {"id": "bob", "asset": "USD/2"}),
        ("POST", f"{L}/accounts", {"id": "old", "asset": "USD/2"}),
    ],
    "CapturePending": [
        (
            "POST",
            f"{L}/transfers",
            {
                "idempotency_key": "hold-1",
                "legs": [{"debit_account": "alice", "credit_account": "bob", "amount": "500"}],
                "pending": {"timeout_seconds": 3600},
            },
        ),
    ],
    "VoidPending": [
        (
            "POST",
            f"{L}/transfers",
            {
                "idempotency_key": "hold-2",
                "legs": [{"debit_account": "alice", "credit_account": "bob", "amount": "700"}],
                "pending": {},
            },
        ),
    ],
}
# Every operation's example, the ledger's first: the others' stories use its ledger.
API_EXAMPLES = merged_examples(services_of(ENABLED_CONTEXTS))
# Transfer ids (32 hex digits) and hashes (64), which cover the ids; stream tickets (64).
_MADE_UP_ID = re.compile(r"[0-9a-f]{32}(?:[0-9a-f]{32})?")


class _Ids:
    """The server's made-up ids as the examples spell them ↔ as this run spells them."""

    def __init__(self) -> None:
        self.actual: dict[str, str] = {}

    def match(self, example: str, actual: str) -> bool:
        if example in self.actual:
            return self.actual[example] == actual
        if actual in self.actual.values():
            return False
        self.actual[example] = actual
        return True

    def into(self, text: str) -> str:
        return _MADE_UP_ID.sub(lambda found: self.actual.get(found[0], found[0]), text)


def _same(example: object, actual: object, ids: _Ids) -> bool:
    if isinstance(example, Mapping) and isinstance(actual, Mapping):
        return example.keys() == actual.keys() and all(
            _same(example[key], actual[key], ids) for key in example
        )
    if isinstance(example, list) and isinstance(actual, list):
        return len(example) == len(actual) and all(
            _same(one, other, ids) for one, other in zip(example, actual, strict=True)
        )
    if isinstance(example, str) and isinstance(actual, str):  # ids may be inside: capture/<id>
        made_up = _MADE_UP_ID.findall(example)
        actual_ids = _MADE_UP_ID.findall(actual)
        return (
            _MADE_UP_ID.split(example) == _MADE_UP_ID.split(actual)
            and len(made_up) == len(actual_ids)
            and all(ids.match(one, other) for one, other in zip(made_up, actual_ids, strict=True))
        )
    return example == actual


async def replay(
    client: httpx.AsyncClient, operation: str, example: ApiExample, ids: _Ids
) -> object:
    """Run ``example``'s setup and the example; its answer (a 200, checked here)."""
    made: list[str] = []
    for method, path, body in SETUP.get(operation, []):
        response = await client.request(method, ids.into(path), json=body)
        assert response.status_code == 200, (operation, path, response.text)
        made.append(response.json()["id"])
    fresh = [found for found in _MADE_UP_ID.findall(example.path) if found not in ids.actual]
    if fresh:
        assert ids.match(fresh[0], made[-1]), operation
    path = ids.into(example.path)
    if example.request is None:
        response = await client.request(example.method, path)
    else:
        response = await client.request(example.method, path, json=dict(example.request))
    assert response.status_code == 200, (operation, response.text)
    if isinstance(example.response, Mapping):
        return response.json()
    return [json.loads(line) for line in response.text.splitlines()]  # a stream: NDJSON


async def test_every_example_answers_as_shown(local_api: RestApi) -> None:
    ids = _Ids()
    for operation, example in API_EXAMPLES.items():
        answer = await replay(local_api.client, operation, example, ids)
        assert _same(example.response, answer, ids), (operation, answer)


def test_every_operation_shows_its_example() -> None:
    operations = {
        operation["operationId"]: operation
        for item in ledgerd_openapi()["paths"].values()
        for operation in item.values()
    }
    assert set(API_EXAMPLES) == set(operations)
    for name, operation in operations.items():
        answer = API_EXAMPLES[name].response
        (media_type, content), *_ = operation["responses"]["200"]["content"].items()
        if media_type == "application/json":
            assert content["example"] == answer, name
        else:  # the stream's lines
            assert [json.loads(line) for line in content["example"].splitlines()] == answer
