"""Every RPC, over gRPC and REST, refused without a token, without its scope, off its ledgers.

A real ``ledgerd serve`` with ``LEDGERD_AUTH=required`` on SQLite; clients made with
``ledgerd clients create`` and tokens from its ``/oauth2/token``, as an operator and a service
would. The RPCs are read from the service descriptors, so one added tomorrow is covered; each
call is the operation's documented example (REST) or its request message naming the example's
ledger (gRPC). A refused call must change nothing: the ledger read before and after is the same.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message

from ledgerd.identity.domain.scopes import Scope
from ledgerd.ledger.entrypoints.grpc.api_access import LEDGER_API_ACCESS
from ledgerd.ledger.entrypoints.grpc.api_examples import LEDGER_API_EXAMPLES
from ledgerd.v1 import ledger_pb2
from tests.e2e.grpc.support import decode
from tests.e2e.grpc.test_serve import LEDGERD, ledgerd_environment, ledgerd_serve

SERVICE = ledger_pb2.DESCRIPTOR.services_by_name["LedgerService"]
METHODS = tuple(SERVICE.methods)
ISSUER = "http://ledgerd.test"
COMMAND_WAIT_S = 60.0
CALL_TIMEOUT_S = 10.0
REST_LINE = re.compile(r"^REST\s+(http://127\.0\.0\.1:\d+)/")
# The examples' story is on this ledger; the tenant's token is for another one only.
LEDGER = "shop"
ELSEWHERE = "elsewhere"
ALL_SCOPES = tuple(str(scope) for scope in Scope)


@dataclass(frozen=True)
class Api:
    http: httpx.AsyncClient
    channel: grpc.aio.Channel


@dataclass(frozen=True)
class Refusal:
    """How a call ended, on either transport: a code, and what travelled with it."""

    code: str
    status: int | str  # HTTP status, or the gRPC status name
    www_authenticate: str | None = None
    details: dict[str, Any] | None = None


async def _ledgerd(url: str, *argv: str) -> str:
    process = await asyncio.create_subprocess_exec(
        str(LEDGERD),
        *argv,
        env=ledgerd_environment(url, token_issuer=ISSUER),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(COMMAND_WAIT_S):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


async def _client(url: str, name: str, *grant: str) -> tuple[str, str]:
    created = json.loads(
        await _ledgerd(url, "clients", "create", name, "--scopes", ",".join(ALL_SCOPES), *grant)
    )
    return created["client_id"], created["client_secret"]


async def _token(http: httpx.AsyncClient, client: tuple[str, str], scopes: list[str]) -> str:
    answer = await http.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "scope": " ".join(scopes)},
        auth=client,
    )
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


def _request(method: MethodDescriptor) -> Message:
    """The method's request message, naming the examples' ledger where it has a ledger."""
    request = message_factory.GetMessageClass(method.input_type)()
    if "ledger" in method.input_type.fields_by_name:
        request.ledger = LEDGER  # type: ignore[attr-defined]
    return request


async def _grpc(api: Api, method: MethodDescriptor, token: str | None) -> Refusal | None:
    path = f"/{SERVICE.full_name}/{method.name}"
    response_type = message_factory.GetMessageClass(method.output_type)
    metadata = () if token is None else (("authorization", f"Bearer {token}"),)
    serialize, deserialize = Message.SerializeToString, response_type.FromString
    try:
        if method.server_streaming:
            stream = api.channel.unary_stream(path, serialize, deserialize)
            async for _item in stream(_request(method), metadata=metadata, timeout=CALL_TIMEOUT_S):
                pass
        else:
            unary = api.channel.unary_unary(path, serialize, deserialize)
            await unary(_request(method), metadata=metadata, timeout=CALL_TIMEOUT_S)
    except grpc.aio.AioRpcError as error:
        return _grpc_refusal(error)
    return None


def _grpc_refusal(error: grpc.aio.AioRpcError) -> Refusal:
    failure = decode(error)
    return Refusal(failure.reason, failure.status.name, details=failure.details)


async def _rest(api: Api, method: MethodDescriptor, token: str | None) -> Refusal | None:
    example = LEDGER_API_EXAMPLES[method.name]
    headers = {} if token is None else {"authorization": f"Bearer {token}"}
    answer = await api.http.request(
        example.method, example.path, json=example.request, headers=headers
    )
    if answer.status_code < 400:
        return None
    problem = answer.json()
    return Refusal(
        problem["code"],
        answer.status_code,
        answer.headers.get("www-authenticate"),
        problem.get("details"),
    )


TRANSPORTS = {"grpc": _grpc, "rest": _rest}


async def _snapshot(api: Api, admin: str) -> list[Any]:
    """What the refused calls must not change: the ledger, its accounts and transfers."""
    headers = {"authorization": f"Bearer {admin}"}
    pages = []
    for path in (f"/v1/ledgers/{LEDGER}", f"/v1/ledgers/{LEDGER}/accounts", "/v1/ledgers"):
        answer = await api.http.get(path, headers=headers)
        assert answer.status_code == 200, answer.text
        pages.append(answer.json())
    answer = await api.http.get(f"/v1/ledgers/{LEDGER}/accounts/alice/entries", headers=headers)
    pages.append(answer.status_code)
    return pages


@asynccontextmanager
async def _served(tmp_path: Path) -> AsyncIterator[tuple[str, Api]]:
    url = f"sqlite+aiosqlite:///{tmp_path}/auth.db"
    async with ledgerd_serve(url, auth="required", token_issuer=ISSUER) as served:
        rest = REST_LINE.match(await served.read_until(lambda line: bool(REST_LINE.match(line))))
        assert rest is not None
        served.drain()
        async with (
            httpx.AsyncClient(base_url=rest.group(1), timeout=COMMAND_WAIT_S) as http,
            grpc.aio.insecure_channel(f"127.0.0.1:{served.port}") as channel,
        ):
            yield url, Api(http, channel)


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
async def test_every_rpc_is_refused_without_token_scope_or_ledger(
    tmp_path: Path, transport: str
) -> None:
    call = TRANSPORTS[transport]
    async with _served(tmp_path) as (url, api):
        admin_client = await _client(url, "admin", "--all-ledgers")
        tenant_client = await _client(url, "tenant", "--ledgers", ELSEWHERE)
        admin = await _token(api.http, admin_client, list(ALL_SCOPES))
        tenant = await _token(api.http, tenant_client, list(ALL_SCOPES))
        headers = {"authorization": f"Bearer {admin}"}
        made = await api.http.post("/v1/ledgers", json={"id": LEDGER}, headers=headers)
        assert made.status_code == 200, made.text
        opened = await api.http.post(
            f"/v1/ledgers/{LEDGER}/accounts",
            json={"id": "alice", "asset": "USD/2"},
            headers=headers,
        )
        assert opened.status_code == 200, opened.text
        missing = await _rest_missing_ledger(api, admin)
        before = await _snapshot(api, admin)

        for method in METHODS:
            needed = LEDGER_API_ACCESS[method.name].scope
            assert needed is not None, method.name
            anonymous = await call(api, method, None)
            assert anonymous is not None, method.name
            assert anonymous.code == "UNAUTHENTICATED", (method.name, anonymous)
            lacking = await _token(api.http, admin_client, [s for s in ALL_SCOPES if s != needed])
            refused = await call(api, method, lacking)
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
            if LEDGER_API_ACCESS[method.name].ledger_field is None:
                continue
            hidden = await call(api, method, tenant)
            assert hidden is not None, method.name
            # Exactly a missing ledger's answer: ids cannot be probed.
            assert hidden.code == "LEDGER_NOT_FOUND", (method.name, hidden)
            if transport == "rest":
                assert (hidden.status, hidden.details) == (missing.status, {"ledger": LEDGER})

        assert await _snapshot(api, admin) == before


async def _rest_missing_ledger(api: Api, admin: str) -> Refusal:
    """A ledger that does not exist, asked for by a token that may see every ledger."""
    answer = await api.http.get("/v1/ledgers/nowhere", headers={"authorization": f"Bearer {admin}"})
    problem = answer.json()
    assert problem["code"] == "LEDGER_NOT_FOUND"
    assert problem["details"] == {"ledger": "nowhere"}
    return Refusal(problem["code"], answer.status_code, details=problem["details"])


async def test_a_granted_token_passes_and_sees_only_its_ledgers(tmp_path: Path) -> None:
    async with _served(tmp_path) as (url, api):
        tenant_client = await _client(url, "tenant", "--ledgers", ELSEWHERE)
        tenant = await _token(api.http, tenant_client, list(ALL_SCOPES))
        headers = {"authorization": f"Bearer {tenant}"}
        # A ledger it creates is granted to it, and usable with the token it already holds.
        made = await api.http.post("/v1/ledgers", json={"id": "fresh"}, headers=headers)
        assert made.status_code == 200, made.text
        got = await api.http.get("/v1/ledgers/fresh", headers=headers)
        assert got.status_code == 200, got.text
        admin_client = await _client(url, "admin", "--all-ledgers")
        admin = await _token(api.http, admin_client, list(ALL_SCOPES))
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
