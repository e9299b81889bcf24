"""Every RPC, over gRPC and REST, refused without a token, without its scope, off its ledgers.

A real ``ledgerd serve`` with ``LEDGERD_AUTH=required`` (``tests/security/deployment.py``). The
RPCs are read from the descriptors of every service the contexts serve over the REST gateway
(the ledger's, the webhooks', the streams' ticket), so one added tomorrow is covered; each call
is the
operation's documented example (REST) or its request message naming the example's ledger
(gRPC). A refused call must change nothing: the ledger read before and after is the same.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message

from ledgerd.main.bounded_context import merged_access, merged_examples, services_of
from ledgerd.main.contexts import ENABLED_CONTEXTS
from tests.e2e.grpc.support import decode
from tests.security.deployment import (
    ALL_SCOPES,
    CALL_TIMEOUT_S,
    Deployment,
    Refusal,
    deployment,
    leaked,
)

# Every service's methods the REST gateway routes (those with an example), with their access
# entries and examples as the server has them. WatchLedger is served over SSE and WebSocket
# instead, and refused on its own in tests/e2e/streams/test_stream_auth.py.
SERVICES = services_of(ENABLED_CONTEXTS)
ACCESS = merged_access(SERVICES)
EXAMPLES = merged_examples(SERVICES)
METHODS = tuple(
    method
    for service in SERVICES
    for method in service.descriptor.methods
    if method.name in EXAMPLES
)
# The examples' story is on this ledger; the tenant's token is for another one only.
LEDGER = "shop"
ELSEWHERE = "elsewhere"

Call = Callable[[Deployment, MethodDescriptor, str | None], Awaitable[Refusal | None]]


def _path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def _request(method: MethodDescriptor) -> Message:
    """The method's request message, naming the examples' ledger where it has a ledger."""
    request = message_factory.GetMessageClass(method.input_type)()
    if "ledger" in method.input_type.fields_by_name:
        request.ledger = LEDGER  # type: ignore[attr-defined]
    return request


async def _grpc(api: Deployment, method: MethodDescriptor, token: str | None) -> Refusal | None:
    path = _path(method)
    response_type = message_factory.GetMessageClass(method.output_type)
    metadata = () if token is None else (("authorization", f"Bearer {token}"),)

    # The message's own method: the base class's is abstract (passed as the serializer, the
    # server received an empty request, so no ledger was ever named).
    def serialize(message: Message) -> bytes:
        return message.SerializeToString()

    deserialize = response_type.FromString
    try:
        if method.server_streaming:
            stream = api.channel.unary_stream(path, serialize, deserialize)
            async for _item in stream(_request(method), metadata=metadata, timeout=CALL_TIMEOUT_S):
                pass
        else:
            unary = api.channel.unary_unary(path, serialize, deserialize)
            await unary(_request(method), metadata=metadata, timeout=CALL_TIMEOUT_S)
    except grpc.aio.AioRpcError as error:
        failure = decode(error)
        return Refusal(failure.reason, failure.status.name, failure.message, failure.details)
    return None


async def _rest(api: Deployment, method: MethodDescriptor, token: str | None) -> Refusal | None:
    example = EXAMPLES[method.name]
    headers = {} if token is None else {"authorization": f"Bearer {token}"}
    answer = await api.http.request(
        example.method, example.path, json=example.request, headers=headers
    )
    if answer.status_code < 400:
        return None
    return Refusal.of_http(answer)


TRANSPORTS: dict[str, Call] = {"grpc": _grpc, "rest": _rest}


async def _snapshot(api: Deployment, admin: str) -> list[Any]:
    """What the refused calls must not change: the ledgers, the ledger, its accounts, entries."""
    headers = {"authorization": f"Bearer {admin}"}
    pages = []
    for path in (
        "/v1/ledgers",
        f"/v1/ledgers/{LEDGER}",
        f"/v1/ledgers/{LEDGER}/accounts",
        f"/v1/ledgers/{LEDGER}/accounts/alice/entries",
    ):
        answer = await api.http.get(path, headers=headers)
        assert answer.status_code == 200, answer.text
        pages.append(answer.json())
    return pages


async def _missing_ledger(api: Deployment, admin: str) -> Refusal:
    """A ledger that does not exist, asked for by a token that may see every ledger."""
    answer = await api.http.get("/v1/ledgers/nowhere", headers={"authorization": f"Bearer {admin}"})
    problem = answer.json()
    assert problem["code"] == "LEDGER_NOT_FOUND"
    assert problem["details"] == {"ledger": "nowhere"}
    return Refusal(problem["code"], answer.status_code, problem["message"], problem["details"])


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
async def test_every_rpc_is_refused_without_token_scope_or_ledger(
    tmp_path: Path, transport: str
) -> None:
    call = TRANSPORTS[transport]
    async with deployment(f"sqlite+aiosqlite:///{tmp_path}/auth.db") as api:
        admin_client = await api.client("admin", "--all-ledgers")
        admin = await api.token(admin_client)
        tenant = await api.token(await api.client("tenant", "--ledgers", ELSEWHERE))
        headers = {"authorization": f"Bearer {admin}"}
        made = await api.http.post("/v1/ledgers", json={"id": LEDGER}, headers=headers)
        assert made.status_code == 200, made.text
        opened = await api.http.post(
            f"/v1/ledgers/{LEDGER}/accounts",
            json={"id": "alice", "asset": "USD/2"},
            headers=headers,
        )
        assert opened.status_code == 200, opened.text
        missing = await _missing_ledger(api, admin)
        before = await _snapshot(api, admin)

        # A token with every scope but one, per scope (tokens cost the server a secret check).
        lacking: dict[str, str] = {}
        for method in METHODS:
            needed = ACCESS[_path(method)].scope
            assert needed is not None, method.name
            anonymous = await call(api, method, None)
            assert anonymous is not None, method.name
            assert anonymous.code == "UNAUTHENTICATED", (method.name, anonymous)
            if needed not in lacking:
                others = tuple(scope for scope in ALL_SCOPES if scope != needed)
                lacking[needed] = await api.token(admin_client, others)
            refused = await call(api, method, lacking[needed])
            assert refused is not None, method.name
            assert refused.code == "INSUFFICIENT_SCOPE", (method.name, refused)
            if transport == "rest":
                assert anonymous.status == 401, method.name
                assert anonymous.www_authenticate == 'Bearer realm="ledgerd"', method.name
                assert refused.status == 403, method.name
                assert refused.www_authenticate is not None
                assert f'scope="{needed}"' in refused.www_authenticate, method.name
            else:
                assert (anonymous.status, refused.status) == (
                    "UNAUTHENTICATED",
                    "PERMISSION_DENIED",
                ), method.name
            if ACCESS[_path(method)].ledger_field is None:
                continue
            hidden = await call(api, method, tenant)
            assert hidden is not None, method.name
            # Exactly a missing ledger's answer: ids cannot be probed.
            assert hidden.code == "LEDGER_NOT_FOUND", (method.name, hidden)
            assert hidden.details == {"ledger": LEDGER}, method.name
            if transport == "rest":
                assert hidden.status == missing.status, method.name

        assert await _snapshot(api, admin) == before
        assert leaked(api) == []


async def test_a_granted_token_passes_and_sees_only_its_ledgers(tmp_path: Path) -> None:
    async with deployment(f"sqlite+aiosqlite:///{tmp_path}/auth.db") as api:
        tenant = await api.token(await api.client("tenant", "--ledgers", ELSEWHERE))
        headers = {"authorization": f"Bearer {tenant}"}
        # A ledger it creates is granted to it, and usable with the token it already holds.
        made = await api.http.post("/v1/ledgers", json={"id": "fresh"}, headers=headers)
        assert made.status_code == 200, made.text
        got = await api.http.get("/v1/ledgers/fresh", headers=headers)
        assert got.status_code == 200, got.text
        admin = await api.token(await api.client("admin", "--all-ledgers"))
        other = await api.http.post(
            "/v1/ledgers", json={"id": "private"}, headers={"authorization": f"Bearer {admin}"}
        )
        assert other.status_code == 200, other.text
        listed = await api.http.get("/v1/ledgers", headers=headers)
        assert listed.status_code == 200, listed.text
        # The token's grant (elsewhere, which does not exist) and not the admin's ledger.
        assert "private" not in [ledger["id"] for ledger in listed.json().get("ledgers", [])]
        refused = await api.http.get("/v1/ledgers/private", headers=headers)
        assert refused.status_code == 404
        # Public: health, docs, the OAuth2 metadata, without a token.
        for path in ("/healthz", "/openapi.yaml", "/.well-known/oauth-authorization-server"):
            assert (await api.http.get(path)).status_code == 200, path
