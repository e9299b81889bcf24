"""Schemathesis against the OpenAPI document a running server serves, on SQLite and PostgreSQL.

The server (uvicorn over the real composition root) runs on an event loop of its own in a
thread, because schemathesis' client is synchronous. Ledger ``l1`` is seeded with accounts and
transfers; fuzz dictionaries make generated requests name them about half of the time, and
one explicit example per operation names them for sure (and must succeed), so fuzzing reaches
past "ledger not found" into real data.

Every operation is fuzzed with schema-valid data, and every operation that takes a body or
query parameters also with schema-violating data, from a fixed seed and a few examples each;
then schemathesis chains calls along the links it infers between operations (an id a response
returns, used by the next call). Every response must be a non-5xx whose status is documented,
with the documented content type, headers and body. The document must also be exact: a
schema-violating request must be refused (400), and a schema-valid one must not be, unless it
breaks one of the few rules JSON Schema cannot state (:data:`PROSE_RULES`), and then it must
be refused for exactly that rule. (404, 409, 422 and 429 are answers about the ledger's state,
not the request's shape: a schema-valid request may get them.)

(``schemathesis.pytest.from_fixture`` would load the schema lazily from a fixture, but
schemathesis 4.32 sets ``Function._nodeid``, which pytest 9 no longer has. So the operations are
parametrized here from the same descriptors the gateway routes by, each running a Hypothesis
test over ``APIOperation.as_strategy``.)
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import httpx
import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from schemathesis.checks import CheckContext, not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.transport import Response
from schemathesis.openapi.checks import EnsureResourceAvailability
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ensure_resource_availability,
    negative_data_rejection,
    positive_data_acceptance,
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
# Statuses a schema-valid request may get: the resource is missing, conflicts or the ledger's
# state refuses it, or the server is busy. Not 400, which says the request itself is wrong.
ACCEPTED = ["2xx", "404", "409", "422", "429"]
# Stateful runs: scenarios, and calls per scenario at most.
SCENARIOS = 10
STEPS = 6


@dataclass(frozen=True, slots=True)
class ProseRule:
    """A rule the server enforces that JSON Schema cannot state (the .proto comments do)."""

    what: str
    field: re.Pattern[str]  # the refusal's details.field
    message: re.Pattern[str]


PROSE_RULES = (
    ProseRule("a leg's two accounts differ", re.compile(r"legs\[\d+\]"), re.compile("must differ")),
    ProseRule(
        "a metadata filter names each key once",
        re.compile("metadata"),
        re.compile("names the key .* twice"),
    ),
    ProseRule(
        "a time window's end is not before its start",
        re.compile("end_time"),
        re.compile("must not be before start_time"),
    ),
    ProseRule(
        "a metadata key is set or removed, not both",
        re.compile(r"remove_keys\[\d+\]"),
        re.compile("is also in metadata"),
    ),
    ProseRule(
        "an account's metadata holds at most 64 entries after a change as at creation",
        re.compile("metadata"),
        re.compile("the account would hold"),
    ),
    ProseRule(
        # The .proto comment's: a pattern states the scheme and the characters, not the rest.
        "a webhook URL names a host, with no user name, no #fragment, a port, a public address",
        re.compile("url"),
        re.compile(
            "is not a URL|must name a host|user name or password|#fragment|port 0"
            "|is not a public address"
        ),
    ),
    ProseRule(
        "a page token is one this API returned",
        re.compile("cursor"),
        re.compile("not a cursor returned by this API"),
    ),
)


def _prose_rule_broken(response: Response) -> ProseRule | None:
    """The prose rule a 400 VALIDATION_FAILED refusal names, if any."""
    if response.status_code != 400:
        return None
    problem = response.json()
    if not isinstance(problem, dict) or problem.get("code") != "VALIDATION_FAILED":
        return None
    field, message = str(problem["details"].get("field", "")), str(problem["message"])
    for rule in PROSE_RULES:
        if rule.field.fullmatch(field) and rule.message.search(message):
            return rule
    return None


def accepted_unless_a_prose_rule(
    ctx: CheckContext, response: Response, case: schemathesis.Case[Any]
) -> bool | None:
    """positive_data_acceptance, but a refusal for a prose rule (and nothing else) passes."""
    try:
        return positive_data_acceptance(ctx, response, case)
    except Failure:
        if _prose_rule_broken(response) is None:
            raise
        return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    accepted_unless_a_prose_rule,
]
# The code of a 404 for what each creating (or changing) operation returns.
_NOT_FOUND_CODE = {
    "CreateLedger": "LEDGER_NOT_FOUND",
    "CreateAccount": "ACCOUNT_NOT_FOUND",
    "FreezeAccount": "ACCOUNT_NOT_FOUND",
    "UnfreezeAccount": "ACCOUNT_NOT_FOUND",
    "CloseAccount": "ACCOUNT_NOT_FOUND",
    "UpdateAccountMetadata": "ACCOUNT_NOT_FOUND",
    "PostTransfer": "TRANSFER_NOT_FOUND",
    "PostTransfers": "TRANSFER_NOT_FOUND",
    "CapturePending": "TRANSFER_NOT_FOUND",
    "VoidPending": "TRANSFER_NOT_FOUND",
    "ReverseTransfer": "TRANSFER_NOT_FOUND",
}
_BY_LABEL = {
    f"{route.http_method} {route.template.openapi_path()}": operation_id
    for operation_id, route in OPERATIONS.items()
}


def created_resources_are_found(
    ctx: CheckContext, response: Response, case: schemathesis.Case[Any]
) -> bool | None:
    """ensure_resource_availability, about the created resource: a 404 may name another one.

    A transfer posted to a ledger just created is 404 ACCOUNT_NOT_FOUND when its accounts do
    not exist; only LEDGER_NOT_FOUND would say the new ledger went missing.
    """
    try:
        return ensure_resource_availability(ctx, response, case)
    except EnsureResourceAvailability as failure:
        created = _NOT_FOUND_CODE.get(_BY_LABEL.get(failure.created_with, ""))
        if response.json().get("code") != created:
            return None
        raise


# Along links: also, what a call created, the next call it links to can find.
STATEFUL_CHECKS = [*CHECKS, created_resources_are_found]
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
        "ListLedgers": {"query": {"page_size": 2}},
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
            "query": {
                "account": "ex-b",
                "start_time": "2000-01-01T00:00:00Z",
                "kind": "POSTING",
                "status": "POSTED",
                "page_size": 2,
            },
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
            "query": {"start_time": "2000-01-01T00:00:00Z", "page_size": 2},
        },
        "ExportStatement": {
            "path_parameters": {"ledger": L, "account": "ex-b"},
            "query": {"after_sequence": 1},
        },
        "BatchGetBalances": {
            "path_parameters": {"ledger": L},
            "query": {"accounts": ["ex-b", "ex-a", "ex-b"], "as_of": "2100-01-01T00:00:00Z"},
        },
        "UpdateAccountMetadata": {
            "path_parameters": {"ledger": L, "account": "ex-a"},
            "body": {"metadata": {"team": "fuzz"}, "remove_keys": ["tier", "absent"]},
        },
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
            "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED}},
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
def test_every_operation_conforms_both_ways(
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


def test_linked_calls_conform(api_schema: schemathesis.BaseSchema) -> None:
    """Scenarios of calls chained along the links schemathesis infers from the document."""
    workflow = api_schema.as_state_machine()
    statuses: list[int] = []
    # Failures are collected, not raised: Hypothesis would replay the failing scenario against
    # a server whose state the first run changed, and report that it could not, not why.
    failures: list[str] = []

    class Workflow(workflow):  # type: ignore[misc,valid-type]
        def validate_response(
            self,
            response: Response,
            case: schemathesis.Case[Any],
            additional_checks: object = None,  # noqa: ARG002 - the checks are STATEFUL_CHECKS
            **kwargs: Any,  # noqa: ANN401 - transport options, passed through
        ) -> None:
            statuses.append(response.status_code)
            try:
                operation_id = case.operation.definition.raw["operationId"]
                checks = [
                    check
                    for check in STATEFUL_CHECKS
                    if not (
                        check is negative_data_rejection and operation_id in NOT_REJECTED_AS_A_WHOLE
                    )
                ]
                case.validate_response(
                    response,
                    checks=checks,
                    transport_kwargs=kwargs or None,
                    recorder=self.recorder,
                )
            except FailureGroup as group:
                failures.append(str(group))

    settings = hypothesis.settings(
        max_examples=SCENARIOS,
        stateful_step_count=STEPS,
        phases=[hypothesis.Phase.generate],
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    with contextlib.suppress(hypothesis.errors.Flaky):
        # Which calls are possible depends on what earlier ones got from the server; once that
        # makes Hypothesis meet a scenario prefix that went another way before, it stops (as
        # schemathesis' own runner does). What ran until then was checked all the same.
        Workflow.run(settings=settings)
    assert not failures, f"{len(failures)} failing calls; the first:\n{failures[0]}"
    assert statuses
    assert all(status < 500 for status in statuses)


def test_options_allows_exactly_the_documented_methods(seeded: Seeded) -> None:
    with httpx.Client(base_url=seeded.base_url, timeout=30.0) as client:
        document = client.get("/openapi.json").json()
        for template, item in document["paths"].items():
            documented = {method.upper() for method in item}
            if "GET" in documented:
                documented.add("HEAD")  # served wherever GET is (RFC 9110, 9.3.2)
            path = re.sub(r"\{[^}]+\}", "x", template)
            response = client.options(path)
            assert response.status_code == 405, (path, response.text)
            allowed = {method.strip() for method in response.headers["allow"].split(",")}
            assert allowed == documented, path


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
