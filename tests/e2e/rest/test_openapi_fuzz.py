"""Schemathesis against the OpenAPI document a running server serves, on SQLite and PostgreSQL.

The server (uvicorn over the real composition root) runs on an event loop of its own in a
thread, because schemathesis' client is synchronous. Ledger ``l1`` is seeded with accounts and
transfers; fuzz dictionaries make generated requests name them about half of the time, and
one explicit example per operation names them for sure (and must succeed), so fuzzing reaches
past "ledger not found" into real data.

Every operation is fuzzed with schema-valid data, and every operation that takes a body or
query parameters also with schema-violating data, from a fixed seed and a few examples each.
Every response must be a non-5xx whose status is documented, with the documented content
type, headers and body; schema-violating requests must be refused.

(``schemathesis.pytest.from_fixture`` would load the schema lazily from a fixture, but
schemathesis 4.32 sets ``Function._nodeid``, which pytest 9 no longer has. So the operations are
parametrized here from the same descriptors the gateway routes by, each running a Hypothesis
test over ``APIOperation.as_strategy``.)
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.engine import make_url

from ledgerd.gateway.http_rules import HttpRoute, http_routes
from ledgerd.v1 import ledger_pb2
from tests.e2e.rest.support import JsonObject, ThreadedRestServer

SEED = 20_300_102
EXAMPLES = 12
L = "l1"
# Accounts the fuzz dictionaries name (fuzzing may freeze or close them, which is fine) ...
ACCOUNTS = ("bank", "alice", "bob", "card", "eur")
# ... and accounts only the explicit examples name, so that their requests stay valid.
EXAMPLE_ACCOUNTS = ("ex-a", "ex-b", "to-freeze", "frozen", "spare")
# How often a generated ledger, account or transfer id is one that exists.
OFTEN = 0.5

_ROUTES = http_routes(ledger_pb2.DESCRIPTOR.services_by_name["LedgerService"])
OPERATIONS = {route.operation_id: route for route in _ROUTES}
POSITIVE = schemathesis.GenerationMode.POSITIVE
NEGATIVE = schemathesis.GenerationMode.NEGATIVE
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# A non-atomic batch answers 200 with a result per item, an item's own VALIDATION_FAILED among
# them (as PostTransfersResponse documents); a schema-violating *item* is thus not a rejected
# request. (A malformed whole request still is: see test_errors.)
NOT_REJECTED_AS_A_WHOLE = {"PostTransfers"}

_T = TypeVar("_T")


def _takes_input(route: HttpRoute) -> bool:
    """Whether anything but path variables can be sent, so that invalid data can be made."""
    return route.body is not None or bool(route.query_parameters)


CASES = [
    pytest.param(operation_id, mode, id=f"{operation_id}-{mode.value}")
    for operation_id, route in OPERATIONS.items()
    for mode in (POSITIVE, NEGATIVE)
    if mode is POSITIVE or _takes_input(route)
]


# --- the server and its data -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Seeded:
    base_url: str
    # Transfer ids by idempotency key: those the fuzz dictionaries name, and the examples'.
    transfers: dict[str, str]
    example_transfers: dict[str, str]


def _seed(base_url: str) -> Seeded:
    """Ledger l1 with accounts, and transfers in the states the explicit examples need."""
    with httpx.Client(base_url=base_url, timeout=30.0) as client:

        def ok(response: httpx.Response) -> JsonObject:
            assert response.status_code == 200, response.text
            body: JsonObject = response.json()
            return body

        ok(client.post("/v1/ledgers", json={"id": L, "name": "Fuzzed"}))
        flags: dict[str, dict[str, bool]] = {
            "alice": {"debits_must_not_exceed_credits": True},
            "bob": {"debits_must_not_exceed_credits": True},
            "card": {"credits_must_not_exceed_debits": True},
        }
        for account in ACCOUNTS + EXAMPLE_ACCOUNTS:
            body = {
                "id": account,
                "asset": "EUR/2" if account == "eur" else "USD/2",
                "flags": flags.get(account, {}),
                "metadata": {"tier": "gold"},
            }
            ok(client.post(f"/v1/ledgers/{L}/accounts", json=body))
        ok(client.post(f"/v1/ledgers/{L}/accounts/frozen:freeze", json={}))

        def post(key: str, debit: str, credit: str, amount: int, *, hold: bool = False) -> str:
            body: JsonObject = {
                "idempotency_key": key,
                "legs": [{"debit_account": debit, "credit_account": credit, "amount": amount}],
            }
            if hold:
                body["pending"] = {}
            return str(ok(client.post(f"/v1/ledgers/{L}/transfers", json=body))["id"])

        fuzzed = {
            "fund": post("fund", "bank", "alice", 1_000_000),
            "pay": post("pay", "alice", "bob", 1_000),
            "held": post("held", "alice", "bob", 500, hold=True),
            "captured": post("captured", "bank", "bob", 300, hold=True),
        }
        captured = fuzzed["captured"]
        ok(client.post(f"/v1/ledgers/{L}/transfers/{captured}:capture", json={"amount": 100}))
        examples = {
            "ex-pay": post("ex-pay", "ex-a", "ex-b", 1_000),
            "ex-to-reverse": post("ex-to-reverse", "ex-a", "ex-b", 100),
            "ex-to-capture": post("ex-to-capture", "ex-a", "ex-b", 500, hold=True),
            "ex-to-void": post("ex-to-void", "ex-a", "ex-b", 700, hold=True),
        }
    return Seeded(base_url, fuzzed, examples)


def _examples(seeded: Seeded) -> dict[str, dict[str, Any]]:
    """Per operation, a request on the seeded data that must succeed: Case() keyword arguments."""
    ids = seeded.example_transfers
    leg = {"debit_account": "ex-a", "credit_account": "ex-b", "amount": "5"}
    return {
        "CreateLedger": {"body": {"id": "l2", "name": "second"}},
        "GetLedger": {"path_parameters": {"ledger": L}},
        "CreateAccount": {
            "path_parameters": {"ledger": L},
            "body": {"id": "new", "asset": "USD/2"},
        },
        "GetAccount": {"path_parameters": {"ledger": L, "account": "ex-a"}},
        "ListAccounts": {
            "path_parameters": {"ledger": L},
            "query": {"metadata": ["tier=gold"], "page_size": 2},
        },
        "FreezeAccount": {"path_parameters": {"ledger": L, "account": "to-freeze"}, "body": {}},
        "UnfreezeAccount": {"path_parameters": {"ledger": L, "account": "frozen"}, "body": {}},
        "CloseAccount": {"path_parameters": {"ledger": L, "account": "spare"}, "body": {}},
        "PostTransfer": {
            "path_parameters": {"ledger": L},
            "body": {"idempotency_key": "example", "legs": [leg]},
        },
        "PostTransfers": {
            "path_parameters": {"ledger": L},
            "body": {"transfers": [{"idempotency_key": "batch", "legs": [leg]}], "atomic": True},
        },
        "GetTransfer": {"path_parameters": {"ledger": L, "transfer": ids["ex-pay"]}},
        "GetTransferByKey": {
            "path_parameters": {"ledger": L},
            "query": {"idempotency_key": "ex-pay"},
        },
        "ListTransfers": {
            "path_parameters": {"ledger": L},
            "query": {"account": "ex-b", "start_time": "2000-01-01T00:00:00Z", "page_size": 2},
        },
        "CapturePending": {
            "path_parameters": {"ledger": L, "transfer": ids["ex-to-capture"]},
            "body": {"amount": 10},
        },
        "VoidPending": {
            "path_parameters": {"ledger": L, "transfer": ids["ex-to-void"]},
            "body": {},
        },
        "ReverseTransfer": {
            "path_parameters": {"ledger": L, "transfer": ids["ex-to-reverse"]},
            "body": {},
        },
        "GetBalance": {
            "path_parameters": {"ledger": L, "account": "ex-b"},
            "query": {"as_of": "2100-01-01T00:00:00+01:00"},
        },
        "ListEntries": {
            "path_parameters": {"ledger": L, "account": "ex-b"},
            "query": {"page_size": 2},
        },
        "ExportStatement": {"path_parameters": {"ledger": L, "account": "ex-b"}},
    }


def _config(seeded: Seeded) -> schemathesis.Config:
    dictionaries = {
        "ledgers": [L],
        "accounts": list(ACCOUNTS),
        "transfers": list(seeded.transfers.values()),
    }
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {"database": "none", "deterministic": True},
            "dictionaries": {name: {"values": values} for name, values in dictionaries.items()},
            "parameters": {
                "path.ledger": {"dictionary": "ledgers", "probability": OFTEN},
                "path.account": {"dictionary": "accounts", "probability": OFTEN},
                "path.transfer": {"dictionary": "transfers", "probability": OFTEN},
                "query.account": {"dictionary": "accounts", "probability": OFTEN},
            },
        }
    )


def _run(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coroutine`` on a loop of its own in a worker thread (these fixtures are sync)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def _admin(server_url: str, statement: str) -> None:
    dsn = make_url(server_url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn, timeout=5.0)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ],
)
def fuzzed_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh database for this module's server, once per backend."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('fuzz')}/ledgerd.db"
        return
    server_url: str = request.getfixturevalue("postgres_server_url")
    name = f"ledgerd_t_fuzz_{secrets.token_hex(6)}"
    _run(_admin(server_url, f'CREATE DATABASE "{name}" TEMPLATE template0'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        _run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def seeded(fuzzed_database: str) -> Iterator[Seeded]:
    """The server on its own thread, with ledger l1 seeded."""
    server = ThreadedRestServer(fuzzed_database)
    server.start()
    try:
        yield _seed(server.base_url)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def api_schema(seeded: Seeded) -> schemathesis.BaseSchema:
    """The OpenAPI document as the running server serves it, with dictionaries of real ids."""
    return schemathesis.openapi.from_url(f"{seeded.base_url}/openapi.json", config=_config(seeded))


# --- the fuzzing -------------------------------------------------------------------------------


@pytest.mark.parametrize(("operation_id", "mode"), CASES)
def test_every_response_is_documented_and_never_a_5xx(
    api_schema: schemathesis.BaseSchema,
    seeded: Seeded,
    operation_id: str,
    mode: schemathesis.GenerationMode,
) -> None:
    route = OPERATIONS[operation_id]
    label = f"{route.http_method} {route.template.openapi_path()}"
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None, label
    assert operation.definition.raw["operationId"] == operation_id
    checks = [
        check
        for check in CHECKS
        if not (check is negative_data_rejection and operation_id in NOT_REJECTED_AS_A_WHOLE)
    ]
    strategy = operation.as_strategy(generation_mode=mode)
    on_real_data = operation.Case(**_examples(seeded)[operation_id])
    statuses: list[int] = []

    def fuzz(case: schemathesis.Case[Any]) -> None:
        response = case.call_and_validate(checks=checks)
        statuses.append(response.status_code)
        if case is on_real_data:
            assert response.status_code == 200, response.text

    test: Callable[[], None] = hypothesis.settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )(hypothesis.given(case=strategy)(fuzz))
    if mode is POSITIVE:
        test = hypothesis.example(case=on_real_data)(test)
    test()
    assert statuses
    assert all(status < 500 for status in statuses)


# --- what the fuzzing found --------------------------------------------------------------------


def test_a_newline_in_a_path_variable_gets_a_problem_body(seeded: Seeded) -> None:
    with httpx.Client(base_url=seeded.base_url, timeout=30.0) as client:
        response = client.get("/v1/ledgers/l%0A1")
    assert response.status_code in {400, 404}, response.text
    assert response.headers["content-type"].startswith("application/json"), response.text
    assert response.json()["code"] in {"VALIDATION_FAILED", "ROUTE_NOT_FOUND"}


def test_a_blank_but_non_empty_body_is_not_json(seeded: Seeded) -> None:
    with httpx.Client(base_url=seeded.base_url, timeout=30.0) as client:
        response = client.post(
            f"/v1/ledgers/{L}/accounts/no-such-account:close",
            content=b"\n",
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "VALIDATION_FAILED"
