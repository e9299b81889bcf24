"""When storage fails: 503 for an outage, an RFC-shaped 500 for a bug, and nothing leaked."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from ledgerd.identity.application.authenticate_client import AuthenticateClient
from ledgerd.identity.application.client_credentials import IssueClientCredentialsToken
from ledgerd.identity.domain.clients import OAuthClient
from ledgerd.kernel.errors import unavailable
from tests.unit.identity.entrypoints.conftest import serve, svc_auth
from tests.unit.identity.oauth_world import SVC_SECRET, oauth_world


class UnreachableClients:
    """A client repository whose database is down."""

    async def get(self, client_id: str) -> OAuthClient | None:  # noqa: ARG002 - down for any id
        raise unavailable("the identity database")

    async def add(self, client: OAuthClient) -> None:  # noqa: ARG002 - down for any client
        raise unavailable("the identity database")


class BrokenClients:
    """A client repository with a bug whose message quotes what it was given."""

    async def get(self, client_id: str) -> OAuthClient | None:
        msg = f"bug while reading {client_id} {SVC_SECRET}"
        raise RuntimeError(msg)

    async def add(self, client: OAuthClient) -> None:
        raise NotImplementedError


@pytest.mark.parametrize(
    ("clients", "status", "error"),
    [
        (UnreachableClients(), 503, "temporarily_unavailable"),
        (BrokenClients(), 500, "server_error"),
    ],
)
async def test_a_failing_store_gets_an_rfc_shaped_answer_and_no_secret_in_the_log(
    clients: UnreachableClients | BrokenClients,
    status: int,
    error: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    world = await oauth_world()
    authenticate = AuthenticateClient(world.uow, clients, world.hasher)
    use_cases = replace(
        world.use_cases,
        client_credentials=IssueClientCredentialsToken(authenticate, world.access_tokens),
    )
    async with serve(world, use_cases) as oauth:
        answer = await oauth.http.post(
            "/oauth2/token", data={"grant_type": "client_credentials"}, auth=svc_auth()
        )
    assert answer.status_code == status
    assert answer.json()["error"] == error
    assert set(answer.json()) == {"error", "error_description"}
    if status == 503:
        assert answer.headers["retry-after"] == "1"
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert SVC_SECRET not in logged
    assert f"oauth POST /oauth2/token {status}" in logged
