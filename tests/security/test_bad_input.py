"""Malformed credentials and requests get a clear, RFC-shaped refusal: never a 500, never a token.

One ``ledgerd serve`` (``LEDGERD_AUTH=required``, SQLite) for the module, over real HTTP and
gRPC. The ``Authorization`` values are sent to the API on both transports, a token request's
faults to ``/oauth2/token`` with a client's right secret, so that only the fault can refuse it.
Each refused call must leave the ledger as it was.

A gRPC client cannot send a metadata value that is no ASCII (gRPC's core refuses it before it
leaves the process), so that one case goes over REST only, into the same pipeline.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio

from ledgerd.v1 import ledger_pb2 as pb
from ledgerd.v1 import ledger_pb2_grpc
from tests.security.deployment import (
    CALL_TIMEOUT_S,
    LEDGER,
    Client,
    Deployment,
    deployment,
    leaked,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

MALFORMED = "malformed authorization"


class World:
    def __init__(self, served: Deployment, admin: str, payments: Client, token: str) -> None:
        self.served = served
        self.admin = admin
        self.payments = payments
        self.token = token


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    database = tmp_path_factory.mktemp("bad-input") / "ledgerd.db"
    async with deployment(f"sqlite+aiosqlite:///{database}") as served:
        admin = await served.token(await served.client("admin", "--all-ledgers"))
        await served.books(admin)
        payments = await served.client("payments", "--all-ledgers")
        yield World(served, admin, payments, await served.token(payments))


def _malformed_values(token: str) -> dict[str, str]:
    """Authorization values that carry a good token, or a token's place, in a bad shape."""
    return {
        "no scheme": token,
        "another scheme": f"Basic {token}",
        "the scheme alone": "Bearer",
        "two tokens": f"Bearer {token} {token}",
        "two schemes": f"Bearer Bearer {token}",
        "a comma-joined pair": f"Bearer {token}, Bearer {token}",
        "a quoted token": f'Bearer "{token}"',
        "a token of other characters": f"Bearer {token.replace('.', '!')}",
    }


@pytest.mark.parametrize(
    "case",
    [
        "no scheme",
        "another scheme",
        "the scheme alone",
        "two tokens",
        "two schemes",
        "a comma-joined pair",
        "a quoted token",
        "a token of other characters",
    ],
)
async def test_a_malformed_authorization_is_unauthenticated_on_both_transports(
    world: World, case: str
) -> None:
    served = world.served
    value = _malformed_values(world.token)[case]
    before = await served.snapshot(world.admin)
    rest = await served.post_over_rest(value)
    grpc_ = await served.post_over_grpc(value)
    assert rest is not None
    assert grpc_ is not None
    assert (rest.status, rest.code, rest.message) == (401, "UNAUTHENTICATED", MALFORMED)
    assert rest.www_authenticate == 'Bearer realm="ledgerd", error="invalid_token"'
    assert (grpc_.status, grpc_.code, grpc_.message) == (
        "UNAUTHENTICATED",
        "UNAUTHENTICATED",
        MALFORMED,
    )
    assert await served.snapshot(world.admin) == before


async def test_a_64_kib_authorization_is_refused_before_any_work(world: World) -> None:
    served = world.served
    value = "Bearer " + "a" * 64 * 1024
    before = await served.snapshot(world.admin)
    rest = await served.post_over_rest(value)
    assert rest is not None
    assert (rest.status, rest.code, rest.message) == (401, "UNAUTHENTICATED", MALFORMED)
    # gRPC's own transport refuses metadata beyond its hard limit (16 KiB) before the call
    # reaches the pipeline: RESOURCE_EXHAUSTED, as gRPC specifies, not an error of ours.
    stub = ledger_pb2_grpc.LedgerServiceStub(served.channel)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.GetBalance(
            pb.GetBalanceRequest(ledger=LEDGER, account="alice"),
            metadata=(("authorization", value),),
            timeout=CALL_TIMEOUT_S,
        )
    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert await served.snapshot(world.admin) == before


async def test_a_non_ascii_authorization_is_unauthenticated_over_rest(world: World) -> None:
    served = world.served
    before = await served.snapshot(world.admin)
    for value in (f"Bearer {world.token}é".encode(), b"Bearer \xff\xfe", "Bearer é".encode()):
        refused = await served.post_over_rest(value)
        assert refused is not None
        assert (refused.status, refused.code, refused.message) == (
            401,
            "UNAUTHENTICATED",
            MALFORMED,
        )
    assert await served.snapshot(world.admin) == before


async def test_two_authorization_lines_are_unauthenticated_on_both_transports(
    world: World,
) -> None:
    served = world.served
    before = await served.snapshot(world.admin)
    good = f"Bearer {world.token}".encode()
    answer = await served.http.get(
        "/v1/ledgers/books/accounts/alice/balance",
        headers=[(b"authorization", good), (b"authorization", good)],
    )
    assert (answer.status_code, answer.json()["code"]) == (401, "UNAUTHENTICATED")
    # gRPC metadata may carry a key twice too: a good token first must not hide what follows.
    refused = await served.post_over_grpc_with(
        (("authorization", good.decode()), ("authorization", "Bearer forged"))
    )
    assert refused is not None
    assert (refused.status, refused.code, refused.message) == (
        "UNAUTHENTICATED",
        "UNAUTHENTICATED",
        MALFORMED,
    )
    assert await served.snapshot(world.admin) == before


def _form(*pairs: tuple[str, str]) -> bytes:
    return "&".join(f"{name}={value}" for name, value in pairs).encode()


FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize(
    ("body", "headers", "error"),
    [
        # RFC 6749 §3.2: the token endpoint reads a form and nothing else.
        (
            b'{"grant_type": "client_credentials"}',
            {"content-type": "application/json"},
            "invalid_request",
        ),
        (
            _form(("grant_type", "client_credentials")),
            {"content-type": "text/plain"},
            "invalid_request",
        ),
        (_form(("grant_type", "client_credentials"), ("scope", "%zz")), FORM, "invalid_request"),
        (b"grant_type=client_credentials&&=&scope", FORM, "invalid_request"),
        (b"\xff\xfe=\x00", FORM, "invalid_request"),
        # A parameter sent twice: RFC 6749 §3.2 says it must not be; which one would count?
        (
            _form(("grant_type", "client_credentials"), ("grant_type", "client_credentials")),
            FORM,
            "invalid_request",
        ),
        (
            _form(
                ("grant_type", "client_credentials"),
                ("scope", "ledger.read"),
                ("scope", "ledgers.admin"),
            ),
            FORM,
            "invalid_request",
        ),
        (
            _form(("grant_type", "password"), ("username", "u"), ("password", "p")),
            FORM,
            "unsupported_grant_type",
        ),
        (
            _form(("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")),
            FORM,
            "unsupported_grant_type",
        ),
        (_form(("grant_type", "implicit")), FORM, "unsupported_grant_type"),
        (_form(("scope", "ledger.read")), FORM, "invalid_request"),
    ],
)
async def test_a_bad_token_request_is_an_rfc_6749_error_and_no_token(
    world: World, body: bytes, headers: dict[str, str], error: str
) -> None:
    answer = await world.served.http.post(
        "/oauth2/token", content=body, headers=headers, auth=world.payments.basic
    )
    assert answer.status_code == 400, answer.text
    problem = answer.json()
    assert problem["error"] == error, problem
    assert set(problem) <= {"error", "error_description", "error_uri"}
    assert answer.headers["cache-control"] == "no-store"
    assert "access_token" not in answer.text


async def test_an_oversized_token_request_is_refused_without_a_token(world: World) -> None:
    body = _form(("grant_type", "client_credentials"), ("scope", "a" * 1024 * 1024))
    answer = await world.served.http.post(
        "/oauth2/token", content=body, headers=FORM, auth=world.payments.basic
    )
    assert 400 <= answer.status_code < 500, answer.text
    assert "access_token" not in answer.text


async def test_no_secret_or_token_of_this_module_reached_the_server_output(world: World) -> None:
    # Last in the module on purpose: it greps what every case above made the server print.
    served = world.served
    assert leaked(served) == [], served.served.log
    assert "Traceback" not in served.served.log
