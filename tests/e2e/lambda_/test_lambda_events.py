"""``ledgerd.main.lambda_handler`` answering each kind of HTTP event Lambda delivers.

The handler is the real one (mangum in front of the REST gateway, on a SQLite database made by
``ledgerd migrate`` and holding a client made by ``ledgerd clients create``); the events are
built as AWS documents them (``events.py``). Authentication is required, as by default.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.main.lambda_handler import LambdaFunction
from ledgerd.main.lambda_serving import LambdaSettingsError
from ledgerd.main.settings import Settings
from tests.e2e.lambda_.events import BUILDERS, EventBuilder, response_body, response_headers
from tests.e2e.lambda_.ledgerd_setup import Prepared, ledgerd, prepare

REQUEST_ID = "lambda-test-0001"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    return prepare(tmp_path_factory.mktemp("lambda"))


@pytest.fixture(scope="module")
def function(prepared: Prepared) -> Iterator[LambdaFunction]:
    # A short reload interval, so that the inline key reload is seen within the test.
    handler = LambdaFunction(
        Settings(
            database_url=prepared.database_url,
            auth="required",
            key_reload_interval_seconds=0.05,
            log_level="WARNING",
        )
    )
    yield handler
    handler.close()


@pytest.fixture(params=sorted(BUILDERS))
def build(request: pytest.FixtureRequest) -> EventBuilder:
    builder: EventBuilder = BUILDERS[request.param]
    return builder


def _json(response: dict[str, Any]) -> Any:  # noqa: ANN401 - whatever the API answered
    return json.loads(response_body(response))


def _token(function: LambdaFunction, build: EventBuilder, prepared: Prepared) -> str:
    """A token by the client-credentials grant, the form sent base64-encoded (binary)."""
    basic = base64.b64encode(f"{prepared.client_id}:{prepared.client_secret}".encode()).decode()
    answer = function(
        build(
            "POST",
            "/oauth2/token",
            headers={
                "Authorization": f"Basic {basic}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
            body=urlencode({"grant_type": "client_credentials"}).encode(),
            binary=True,
        ),
        None,
    )
    assert answer["statusCode"] == 200, answer
    token: str = _json(answer)["access_token"]
    return token


def test_the_handler_starts_on_its_first_invocation_not_at_import() -> None:
    from ledgerd.main import lambda_handler  # noqa: PLC0415 - the import is what is tested

    assert not lambda_handler.handler.started


def test_health_needs_no_token(function: LambdaFunction, build: EventBuilder) -> None:
    answer = function(build("GET", "/healthz"), None)
    assert answer["statusCode"] == 200
    assert response_body(answer) == b"ok"
    ready = function(build("GET", "/readyz"), None)
    assert (ready["statusCode"], _json(ready)) == (200, {"ready": True})


def test_a_call_without_a_token_is_refused_with_a_challenge(
    function: LambdaFunction, build: EventBuilder
) -> None:
    answer = function(build("GET", "/v1/ledgers"), None)
    assert answer["statusCode"] == 401
    assert _json(answer)["code"] == "UNAUTHENTICATED"
    assert response_headers(answer)["www-authenticate"].startswith("Bearer")


def test_routes_bodies_queries_and_headers_round_trip(
    function: LambdaFunction,
    build: EventBuilder,
    prepared: Prepared,
    request: pytest.FixtureRequest,
) -> None:
    token = _token(function, build, prepared)
    auth = {"Authorization": f"Bearer {token}", "X-Request-Id": REQUEST_ID}
    ledger = f"lambda-{request.node.callspec.id}"
    created = function(
        build(
            "POST",
            "/v1/ledgers",
            headers={**auth, "Content-Type": "application/json"},
            body=json.dumps({"id": ledger, "name": "Lambda ledger"}).encode(),
        ),
        None,
    )
    assert created["statusCode"] == 200, created
    assert _json(created)["id"] == ledger
    assert response_headers(created)["x-request-id"] == REQUEST_ID
    # A JSON body sent base64-encoded, as API Gateway does for a binary media type.
    account = function(
        build(
            "POST",
            f"/v1/ledgers/{ledger}/accounts",
            headers={**auth, "Content-Type": "application/json"},
            body=json.dumps({"id": "wallet:alice", "asset": "EUR/2"}).encode(),
            binary=True,
        ),
        None,
    )
    assert account["statusCode"] == 200, account
    listed = function(build("GET", "/v1/ledgers", query="page_size=1", headers=auth), None)
    assert listed["statusCode"] == 200
    assert len(_json(listed)["ledgers"]) == 1
    assert response_headers(listed)["content-type"] == "application/json"
    fetched = function(
        build("GET", f"/v1/ledgers/{ledger}/accounts/wallet:alice", headers=auth), None
    )
    assert _json(fetched)["asset"] == "EUR/2"


def test_errors_come_in_the_api_format(
    function: LambdaFunction, build: EventBuilder, prepared: Prepared
) -> None:
    auth = {"Authorization": f"Bearer {_token(function, build, prepared)}"}
    missing = function(build("GET", "/v1/ledgers/no-such-ledger", headers=auth), None)
    assert (missing["statusCode"], _json(missing)["code"]) == (404, "LEDGER_NOT_FOUND")
    unknown = function(build("GET", "/v1/nowhere", headers=auth), None)
    assert (unknown["statusCode"], _json(unknown)["code"]) == (404, "ROUTE_NOT_FOUND")
    invalid = function(
        build(
            "POST", "/v1/ledgers", headers={**auth, "Content-Type": "application/json"}, body=b"{"
        ),
        None,
    )
    assert (invalid["statusCode"], _json(invalid)["code"]) == (400, "VALIDATION_FAILED")


def test_a_streaming_route_is_refused_with_a_reason(
    function: LambdaFunction, build: EventBuilder, prepared: Prepared
) -> None:
    auth = {"Authorization": f"Bearer {_token(function, build, prepared)}"}
    answer = function(
        build("GET", "/v1/ledgers/any/accounts/wallet:alice/statement:export", headers=auth), None
    )
    assert answer["statusCode"] == 501
    problem = _json(answer)
    assert problem["code"] == "STREAMING_UNAVAILABLE"
    assert problem["details"] == {"method": "ledgerd.v1.LedgerService.ExportStatement"}
    # The paged form of the same entries works (an unknown ledger: its own error).
    paged = function(
        build("GET", "/v1/ledgers/any/accounts/wallet:alice/entries", headers=auth), None
    )
    assert _json(paged)["code"] == "LEDGER_NOT_FOUND"


def test_non_text_answers_are_base64_and_text_ones_are_not(
    function: LambdaFunction, build: EventBuilder
) -> None:
    yaml = function(build("GET", "/openapi.yaml"), None)
    assert yaml["isBase64Encoded"] is False
    assert response_body(yaml).startswith(b"openapi:")
    docs = function(build("GET", "/docs"), None)
    assert docs["isBase64Encoded"] is False
    assert b"<html" in response_body(docs).lower()


def test_warm_invocations_reuse_the_database_connections(
    function: LambdaFunction, build: EventBuilder
) -> None:
    function(build("GET", "/readyz"), None)  # started, and a connection in the pool
    assert function._serving is not None
    serving = function._serving
    engine = function._loop.run_until_complete(serving.container.get(AsyncEngine))  # type: ignore[union-attr]
    connects: list[object] = []

    def connected(*_args: object) -> None:
        connects.append(1)

    sa_event.listen(engine.sync_engine, "connect", connected)
    try:
        for _ in range(5):
            assert function(build("GET", "/readyz"), None)["statusCode"] == 200
    finally:
        sa_event.remove(engine.sync_engine, "connect", connected)
    assert function._serving is serving
    assert connects == []


def test_rotated_signing_keys_are_picked_up_between_invocations(
    function: LambdaFunction, prepared: Prepared
) -> None:
    build = BUILDERS["http-api-v2"]
    before = len(_json(function(build("GET", "/.well-known/jwks.json"), None))["keys"])
    ledgerd(prepared.database_url, "keys", "rotate")
    # No worker runs between invocations: the reload happens inline, once the interval is due.
    time.sleep(0.1)
    after = len(_json(function(build("GET", "/.well-known/jwks.json"), None))["keys"])
    assert after == before + 1


def test_the_database_url_may_come_from_the_secrets_port(
    prepared: Prepared, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAMBDA_TEST_DATABASE_URL", prepared.database_url)
    function = LambdaFunction(
        Settings(database_url="secret://env/LAMBDA_TEST_DATABASE_URL", log_level="WARNING")
    )
    try:
        answer = function(BUILDERS["alb"]("GET", "/readyz"), None)
        assert (answer["statusCode"], _json(answer)) == (200, {"ready": True})
    finally:
        function.close()


def test_leased_database_credentials_are_refused(prepared: Prepared) -> None:
    function = LambdaFunction(
        Settings(
            database_url=prepared.database_url,
            database_credentials="secret://vault-db/database/creds/ledgerd",
        )
    )
    with pytest.raises(LambdaSettingsError, match="LEDGERD_DATABASE_CREDENTIALS"):
        function(BUILDERS["alb"]("GET", "/healthz"), None)
    assert not function.started


def test_secrets_are_read_again_between_invocations_once_due(
    prepared: Prepared, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LAMBDA_TEST_DATABASE_URL", prepared.database_url)
    function = LambdaFunction(
        Settings(
            database_url="secret://env/LAMBDA_TEST_DATABASE_URL",
            secret_ttl_seconds=1,
            log_level="WARNING",
        )
    )
    rotated = f"sqlite+aiosqlite:///{tmp_path / 'rotated.db'}"
    try:
        health = BUILDERS["http-api-v2"]("GET", "/healthz")
        function(health, None)
        assert function._serving is not None
        secrets = function._serving.secrets
        reference = secrets.references["database_url"]
        monkeypatch.setenv("LAMBDA_TEST_DATABASE_URL", rotated)
        function(health, None)  # not due yet: the value read at the start holds
        assert secrets.cache.current(reference).reveal() == prepared.database_url
        time.sleep(1.1)  # no worker runs meanwhile: the next invocation reads it again
        function(health, None)
        assert secrets.cache.current(reference).reveal() == rotated
    finally:
        function.close()
