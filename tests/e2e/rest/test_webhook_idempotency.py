"""CreateWebhook with an idempotency key: a retried creation answers the webhook it made.

Through the REST gateway (both modes, both databases) and gRPC: the same key with the same
request answers the same webhook, as it is now, with its current secret and ``replayed`` set;
with another request it is ``IDEMPOTENCY_CONFLICT`` (as for transfers) and nothing is written;
the key of a webhook since deleted stays spent; calls racing with one key on PostgreSQL make
one webhook. Without a key a retry makes a second webhook, as it always did.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from ledgerd.v1 import webhooks_pb2 as pb
from ledgerd.v1 import webhooks_pb2_grpc
from ledgerd.webhooks.domain.endpoints import MAX_ENDPOINTS_PER_LEDGER
from tests.e2e.grpc.support import decode
from tests.e2e.rest.support import JsonObject, RestApi, ok, problem, serve_rest
from tests.integration.webhooks.support import webhook_tables

L = "books"
OTHER = "other"
HOOKS = f"/v1/ledgers/{L}/webhooks"
URL = "https://partner.example/hooks"
REQUEST: JsonObject = {
    "url": URL,
    "description": "payments team",
    "filter": {
        "event_types": ["ledgerd.v1.TransferPosted", "ledgerd.v1.TransferReversed"],
        "accounts": ["alice"],
    },
    "idempotency_key": "partner-hooks-1",
}
# Concurrent creations with one key; more than the pool would run one after the other.
RACERS = 8
CALL_TIMEOUT_S = 10.0


@pytest.fixture
async def sqlite_api(sqlite_url: str) -> AsyncIterator[RestApi]:
    async with serve_rest(sqlite_url) as api:
        yield api


async def _books(api: RestApi) -> None:
    for ledger in (L, OTHER):
        ok(await api.client.post("/v1/ledgers", json={"id": ledger}))


async def _hook_ids(api: RestApi, ledger: str = L) -> list[str]:
    listed = ok(await api.client.get(f"/v1/ledgers/{ledger}/webhooks"))
    return [hook["id"] for hook in listed["webhooks"]]


async def test_a_creation_retried_with_its_key_makes_one_webhook(rest_api: RestApi) -> None:
    await _books(rest_api)
    first = ok(await rest_api.client.post(HOOKS, json=REQUEST))
    assert first["replayed"] is False
    before = await webhook_tables(rest_api.engine)

    again = ok(await rest_api.client.post(HOOKS, json=REQUEST))
    assert again == {**first, "replayed": True}
    assert await _hook_ids(rest_api) == [first["webhook"]["id"]]
    assert await webhook_tables(rest_api.engine) == before
    # The webhook shows the key it was made with, as a transfer does: a client that lost the
    # answer can also find it by listing.
    assert first["webhook"]["idempotency_key"] == REQUEST["idempotency_key"]
    got = ok(await rest_api.client.get(f"{HOOKS}/{first['webhook']['id']}"))
    assert got["idempotency_key"] == REQUEST["idempotency_key"]


async def test_the_replay_answers_the_webhook_as_it_is_now(local_api: RestApi) -> None:
    await _books(local_api)
    client = local_api.client
    first = ok(await client.post(HOOKS, json=REQUEST))
    path = f"{HOOKS}/{first['webhook']['id']}"
    ok(await client.post(f"{path}:disable", json={}))
    ok(await client.patch(path, json={"description": "renamed since"}))
    rotated = ok(await client.post(f"{path}:rotateSecret", json={"grace_seconds": 0}))

    again = ok(await client.post(HOOKS, json=REQUEST))
    # The request is compared with the one that created the webhook, not with what it is now.
    assert again["replayed"] is True
    assert again["webhook"] == ok(await client.get(path))
    assert again["webhook"]["enabled"] is False
    assert again["webhook"]["description"] == "renamed since"
    # The secret that signs now: the first one no longer does.
    assert again["secret"] == rotated["secret"] != first["secret"]


async def test_the_same_request_in_another_order_is_the_same_request(local_api: RestApi) -> None:
    await _books(local_api)
    first = ok(await local_api.client.post(HOOKS, json=REQUEST))
    reordered = {
        **REQUEST,
        "filter": {
            "event_types": ["ledgerd.v1.TransferReversed", "ledgerd.v1.TransferPosted"],
            "accounts": ["alice", "alice"],
        },
    }
    again = ok(await local_api.client.post(HOOKS, json=reordered))
    assert again == {**first, "replayed": True}


CONFLICTING: list[tuple[str, JsonObject]] = [
    ("url", {**REQUEST, "url": "https://partner.example/other"}),
    ("url's case", {**REQUEST, "url": "HTTPS://partner.example/hooks"}),
    ("description", {**REQUEST, "description": "another team"}),
    ("no description", {key: value for key, value in REQUEST.items() if key != "description"}),
    ("types", {**REQUEST, "filter": {**REQUEST["filter"], "event_types": []}}),
    ("accounts", {**REQUEST, "filter": {**REQUEST["filter"], "accounts": ["alice", "bob"]}}),
    ("no filter", {key: value for key, value in REQUEST.items() if key != "filter"}),
]


async def test_a_key_reused_with_another_request_is_a_conflict(rest_api: RestApi) -> None:
    await _books(rest_api)
    first = ok(await rest_api.client.post(HOOKS, json=REQUEST))
    before = await webhook_tables(rest_api.engine)
    for case, body in CONFLICTING:
        refused = problem(await rest_api.client.post(HOOKS, json=body), 409, "IDEMPOTENCY_CONFLICT")
        assert refused["details"] == {
            "idempotency_key": REQUEST["idempotency_key"],
            "webhook_id": first["webhook"]["id"],
        }, case
    assert await webhook_tables(rest_api.engine) == before


async def test_a_deleted_webhooks_key_stays_spent(rest_api: RestApi) -> None:
    await _books(rest_api)
    client = rest_api.client
    first = ok(await client.post(HOOKS, json=REQUEST))
    hook_id = first["webhook"]["id"]
    ok(await client.delete(f"{HOOKS}/{hook_id}"))
    before = await webhook_tables(rest_api.engine)

    # A late retry must not bring back an endpoint its owner deleted.
    gone = problem(await client.post(HOOKS, json=REQUEST), 404, "WEBHOOK_NOT_FOUND")
    assert gone["details"] == {"webhook": hook_id, "idempotency_key": REQUEST["idempotency_key"]}
    assert "deleted" in gone["message"]
    # Another request with the key is still the conflict it always was.
    refused = problem(
        await client.post(HOOKS, json={**REQUEST, "url": "https://partner.example/new"}),
        409,
        "IDEMPOTENCY_CONFLICT",
    )
    assert refused["details"]["webhook_id"] == hook_id
    assert await webhook_tables(rest_api.engine) == before
    assert await _hook_ids(rest_api) == []

    # A new key creates a new endpoint.
    fresh = ok(await client.post(HOOKS, json={**REQUEST, "idempotency_key": "partner-hooks-2"}))
    assert fresh["webhook"]["id"] != hook_id
    assert fresh["replayed"] is False


async def test_keys_are_per_ledger_and_creations_without_one_are_not_retry_safe(
    local_api: RestApi,
) -> None:
    await _books(local_api)
    client = local_api.client
    ours = ok(await client.post(HOOKS, json=REQUEST))
    theirs = ok(await client.post(f"/v1/ledgers/{OTHER}/webhooks", json=REQUEST))
    assert theirs["replayed"] is False
    assert theirs["webhook"]["id"] != ours["webhook"]["id"]

    unkeyed = {key: value for key, value in REQUEST.items() if key != "idempotency_key"}
    made = [ok(await client.post(HOOKS, json=unkeyed)) for _ in range(2)]
    assert [answer["replayed"] for answer in made] == [False, False]
    assert [answer["webhook"]["idempotency_key"] for answer in made] == ["", ""]
    assert made[0]["webhook"]["id"] != made[1]["webhook"]["id"]
    # An empty key is no key (proto3 cannot tell it from one left out).
    ok(await client.post(HOOKS, json={**REQUEST, "idempotency_key": ""}))
    assert len(await _hook_ids(local_api)) == 4


BAD_KEYS = ["has space", "..", "x" * 129, "slash/ed", "é"]


async def test_a_malformed_key_is_refused_and_nothing_changes(sqlite_api: RestApi) -> None:
    await _books(sqlite_api)
    before = await webhook_tables(sqlite_api.engine)
    for key in BAD_KEYS:
        refused = problem(
            await sqlite_api.client.post(HOOKS, json={**REQUEST, "idempotency_key": key}),
            400,
            "VALIDATION_FAILED",
        )
        assert refused["details"]["field"] == "idempotency_key", key
    assert await webhook_tables(sqlite_api.engine) == before


async def test_a_replay_is_answered_even_at_the_ledgers_limit(sqlite_api: RestApi) -> None:
    await _books(sqlite_api)
    first = ok(await sqlite_api.client.post(HOOKS, json=REQUEST))
    for _ in range(MAX_ENDPOINTS_PER_LEDGER - 1):
        ok(await sqlite_api.client.post(HOOKS, json={"url": URL}))
    again = ok(await sqlite_api.client.post(HOOKS, json=REQUEST))
    assert again == {**first, "replayed": True}
    problem(
        await sqlite_api.client.post(HOOKS, json={**REQUEST, "idempotency_key": "one-more"}),
        422,
        "WEBHOOK_LIMIT_REACHED",
    )


async def test_grpc_clients_replay_and_conflict_alike(sqlite_api: RestApi) -> None:
    await _books(sqlite_api)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{sqlite_api.grpc_port}") as channel:
        stub = webhooks_pb2_grpc.WebhookServiceStub(channel)
        request = pb.CreateWebhookRequest(ledger=L, url=URL, idempotency_key="grpc-1")
        first = await stub.CreateWebhook(request, timeout=CALL_TIMEOUT_S)
        again = await stub.CreateWebhook(request, timeout=CALL_TIMEOUT_S)
        assert (first.replayed, again.replayed) == (False, True)
        assert again.webhook == first.webhook
        assert again.secret == first.secret
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.CreateWebhook(
                pb.CreateWebhookRequest(
                    ledger=L, url=URL, description="other", idempotency_key="grpc-1"
                ),
                timeout=CALL_TIMEOUT_S,
            )
        failure = decode(refused.value)
        assert (failure.status.name, failure.reason) == ("ALREADY_EXISTS", "IDEMPOTENCY_CONFLICT")
        assert failure.details["webhook_id"] == first.webhook.id


async def test_racing_creations_with_one_key_make_one_webhook_on_postgres(
    migrated_postgres_url: str,
) -> None:
    async with serve_rest(migrated_postgres_url) as api:
        await _books(api)
        answers = await asyncio.gather(
            *(api.client.post(HOOKS, json=REQUEST) for _ in range(RACERS))
        )
        bodies = [ok(answer) for answer in answers]
        assert sorted(body["replayed"] for body in bodies) == [False] + [True] * (RACERS - 1)
        assert {body["webhook"]["id"] for body in bodies} == set(await _hook_ids(api))
        assert len({body["secret"] for body in bodies}) == 1
