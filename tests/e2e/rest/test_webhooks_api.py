"""The webhook API over REST (in-process and forwarding gateway) and gRPC, on both databases.

An endpoint's whole life through the API, and every bad input refused with a clear error and
nothing changed: a URL that is no http(s) URL, an unknown ledger, an unknown event type, a
webhook of another ledger, a grace period out of range.
"""

from __future__ import annotations

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
CALL_TIMEOUT_S = 10.0


@pytest.fixture
async def sqlite_api(sqlite_url: str) -> AsyncIterator[RestApi]:
    """The REST API (in-process gateway) and gRPC on SQLite, for the refusals.

    They are decided before any database work or by the queries the life test runs on both.
    """
    async with serve_rest(sqlite_url) as api:
        yield api


async def _books(api: RestApi) -> None:
    for ledger in (L, OTHER):
        ok(await api.client.post("/v1/ledgers", json={"id": ledger}))
    for account in ("bank", "alice"):
        ok(
            await api.client.post(
                f"/v1/ledgers/{L}/accounts", json={"id": account, "asset": "USD/2"}
            )
        )


async def test_a_webhooks_life_through_the_api(rest_api: RestApi) -> None:
    await _books(rest_api)
    client = rest_api.client
    created = ok(
        await client.post(
            HOOKS,
            json={"url": URL, "filter": {"event_types": ["ledgerd.v1.TransferPosted"]}},
        )
    )
    secret = created["secret"]
    hook: JsonObject = created["webhook"]
    assert secret.startswith("whsec_")
    assert len(secret) == len("whsec_") + 64
    assert hook["ledger"] == L
    assert hook["enabled"] is True
    # From now on: the ledger, two accounts (three events) are history to it.
    assert hook["delivered_sequence"] == "3"
    path = f"{HOOKS}/{hook['id']}"
    # The secret is shown once: never again by any read.
    got = ok(await client.get(path))
    assert "secret" not in got
    assert secret not in str(ok(await client.get(HOOKS)))
    assert got == hook

    changed = ok(await client.patch(path, json={"description": "payments"}))
    assert changed["description"] == "payments"
    assert changed["filter"] == hook["filter"]  # left out: kept
    assert changed["url"] == URL
    refiltered = ok(await client.patch(path, json={"filter": {"accounts": ["alice"]}}))
    assert refiltered["filter"] == {"event_types": [], "accounts": ["alice"]}

    assert ok(await client.post(f"{path}:disable", json={}))["enabled"] is False
    assert ok(await client.post(f"{path}:enable", json={}))["enabled"] is True
    rotated = ok(await client.post(f"{path}:rotateSecret", json={}))
    assert rotated["secret"] != secret
    assert "previous_secret_expires_at" in rotated["webhook"]
    assert ok(await client.get(f"{path}/attempts")) == {"attempts": [], "next_page_token": ""}
    assert ok(await client.get(f"{path}/deadLetters")) == {
        "dead_letters": [],
        "next_page_token": "",
    }
    assert ok(await client.post(f"{path}:replay", json={})) == {"replayed": 0}
    assert ok(await client.delete(path)) == {}
    problem(await client.get(path), 404, "WEBHOOK_NOT_FOUND")
    assert ok(await client.get(HOOKS)) == {"webhooks": [], "next_page_token": ""}


async def test_webhooks_are_listed_a_page_at_a_time(local_api: RestApi) -> None:
    await _books(local_api)
    made = sorted(
        [
            ok(await local_api.client.post(HOOKS, json={"url": URL}))["webhook"]["id"]
            for _ in range(3)
        ]
    )
    first = ok(await local_api.client.get(HOOKS, params={"page_size": 2}))
    second = ok(
        await local_api.client.get(
            HOOKS, params={"page_size": 2, "page_token": first["next_page_token"]}
        )
    )
    assert [hook["id"] for hook in first["webhooks"] + second["webhooks"]] == made
    assert second["next_page_token"] == ""


BAD_CREATIONS: list[tuple[str, JsonObject, int, str, str]] = [
    ("ftp", {"url": "ftp://partner.example/x"}, 400, "VALIDATION_FAILED", "url"),
    ("no host", {"url": "https:///path"}, 400, "VALIDATION_FAILED", "url"),
    ("credentials", {"url": "https://me:pw@partner.example/"}, 400, "VALIDATION_FAILED", "url"),
    ("fragment", {"url": "https://partner.example/#x"}, 400, "VALIDATION_FAILED", "url"),
    ("spaces", {"url": "https://partner.example/a b"}, 400, "VALIDATION_FAILED", "url"),
    ("bad port", {"url": "https://partner.example:99999/"}, 400, "VALIDATION_FAILED", "url"),
    ("no url", {}, 400, "VALIDATION_FAILED", "url"),
    # An IP address that is not public: the server's own network (LEDGERD_WEBHOOKS_ALLOWED_NETWORKS
    # is empty here, as by default).
    ("private", {"url": "http://10.0.0.5/admin"}, 400, "VALIDATION_FAILED", "url"),
    ("metadata", {"url": "http://169.254.169.254/latest"}, 400, "VALIDATION_FAILED", "url"),
    ("loopback v6", {"url": "http://[::1]:8080/"}, 400, "VALIDATION_FAILED", "url"),
    ("mapped v4", {"url": "http://[::ffff:127.0.0.1]/"}, 400, "VALIDATION_FAILED", "url"),
    ("unspecified", {"url": "http://0.0.0.0:5432/"}, 400, "VALIDATION_FAILED", "url"),
    (
        "unknown type",
        {"url": URL, "filter": {"event_types": ["ledgerd.v1.MoneyPrinted"]}},
        400,
        "VALIDATION_FAILED",
        "filter.event_types",
    ),
    (
        "bad account",
        {"url": URL, "filter": {"accounts": ["not an id"]}},
        400,
        "VALIDATION_FAILED",
        "filter.accounts",
    ),
]


async def test_a_bad_webhook_is_refused_and_nothing_changes(sqlite_api: RestApi) -> None:
    await _books(sqlite_api)
    before = await webhook_tables(sqlite_api.engine)
    for case, body, status, code, field in BAD_CREATIONS:
        refused = problem(await sqlite_api.client.post(HOOKS, json=body), status, code)
        assert refused["details"]["field"] == field, case
        if body.get("url", "").startswith("http://") and "example" not in body["url"]:
            assert refused["message"].endswith(
                "is not a public address (LEDGERD_WEBHOOKS_ALLOWED_NETWORKS)"
            ), case
    assert await webhook_tables(sqlite_api.engine) == before


async def test_an_unknown_ledger_or_a_webhook_of_another_is_not_found(sqlite_api: RestApi) -> None:
    await _books(sqlite_api)
    client = sqlite_api.client
    missing = problem(
        await client.post("/v1/ledgers/nowhere/webhooks", json={"url": URL}),
        404,
        "LEDGER_NOT_FOUND",
    )
    assert missing["details"] == {"ledger": "nowhere"}
    problem(await client.get("/v1/ledgers/nowhere/webhooks"), 404, "LEDGER_NOT_FOUND")
    theirs = ok(await client.post(f"/v1/ledgers/{OTHER}/webhooks", json={"url": URL}))
    hook_id = theirs["webhook"]["id"]
    before = await webhook_tables(sqlite_api.engine)
    # Named under the wrong ledger, another ledger's webhook does not exist.
    for method, suffix, body in (
        ("GET", "", None),
        ("PATCH", "", {"url": "https://evil.example/"}),
        ("POST", ":disable", {}),
        ("POST", ":rotateSecret", {}),
        ("POST", ":replay", {}),
        ("DELETE", "", None),
        ("GET", "/attempts", None),
    ):
        answer = await client.request(method, f"{HOOKS}/{hook_id}{suffix}", json=body)
        assert problem(answer, 404, "WEBHOOK_NOT_FOUND")["details"] == {"webhook": hook_id}
    assert await webhook_tables(sqlite_api.engine) == before
    problem(await client.get(f"/v1/ledgers/nowhere/webhooks/{hook_id}"), 404, "LEDGER_NOT_FOUND")


async def test_out_of_range_settings_are_refused(sqlite_api: RestApi) -> None:
    await _books(sqlite_api)
    client = sqlite_api.client
    hook = ok(await client.post(HOOKS, json={"url": URL}))["webhook"]
    path = f"{HOOKS}/{hook['id']}"
    before = await webhook_tables(sqlite_api.engine)
    for answer, field in (
        (
            await client.post(f"{path}:rotateSecret", json={"grace_seconds": 604_801}),
            "grace_seconds",
        ),
        (await client.post(f"{path}:rotateSecret", json={"grace_seconds": -1}), "grace_seconds"),
        (await client.patch(path, json={"url": "mailto:ops@partner.example"}), "url"),
        (await client.patch(path, json={"url": "http://10.0.0.5/admin"}), "url"),
        (await client.get(f"{path}/attempts", params={"page_token": "nope"}), "cursor"),
        (await client.get(HOOKS, params={"page_size": 1001}), "page_size"),
        (await client.post(f"{path}:replay", json={"from_sequence": "-1"}), "from_sequence"),
    ):
        assert problem(answer, 400, "VALIDATION_FAILED")["details"]["field"] == field
    assert await webhook_tables(sqlite_api.engine) == before


async def test_grpc_clients_get_the_same_errors(sqlite_api: RestApi) -> None:
    await _books(sqlite_api)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{sqlite_api.grpc_port}") as channel:
        stub = webhooks_pb2_grpc.WebhookServiceStub(channel)
        created = await stub.CreateWebhook(
            pb.CreateWebhookRequest(ledger=L, url=URL), timeout=CALL_TIMEOUT_S
        )
        assert created.secret.startswith("whsec_")
        for request, status, reason in (
            (
                pb.CreateWebhookRequest(ledger=L, url="gopher://x"),
                "INVALID_ARGUMENT",
                "VALIDATION_FAILED",
            ),
            (pb.CreateWebhookRequest(ledger="nowhere", url=URL), "NOT_FOUND", "LEDGER_NOT_FOUND"),
            (
                pb.CreateWebhookRequest(
                    ledger=L, url=URL, filter=pb.WebhookFilter(event_types=["Nope"])
                ),
                "INVALID_ARGUMENT",
                "VALIDATION_FAILED",
            ),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.CreateWebhook(request, timeout=CALL_TIMEOUT_S)
            failure = decode(refused.value)
            assert (failure.status.name, failure.reason) == (status, reason)
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.GetWebhook(
                pb.WebhookRequest(ledger=L, webhook="0" * 32), timeout=CALL_TIMEOUT_S
            )
        failure = decode(missing.value)
        assert (failure.status.name, failure.reason) == ("NOT_FOUND", "WEBHOOK_NOT_FOUND")
        listed = await stub.ListWebhooks(pb.ListWebhooksRequest(ledger=L), timeout=CALL_TIMEOUT_S)
        assert [hook.id for hook in listed.webhooks] == [created.webhook.id]


async def test_a_ledger_has_a_limited_number_of_webhooks(sqlite_api: RestApi) -> None:
    await _books(sqlite_api)
    for _ in range(MAX_ENDPOINTS_PER_LEDGER):
        ok(await sqlite_api.client.post(HOOKS, json={"url": URL}))
    before = await webhook_tables(sqlite_api.engine)
    refused = problem(
        await sqlite_api.client.post(HOOKS, json={"url": URL}), 422, "WEBHOOK_LIMIT_REACHED"
    )
    assert refused["details"] == {"ledger": L, "limit": str(MAX_ENDPOINTS_PER_LEDGER)}
    assert await webhook_tables(sqlite_api.engine) == before
    # Another ledger has its own.
    ok(await sqlite_api.client.post(f"/v1/ledgers/{OTHER}/webhooks", json={"url": URL}))
