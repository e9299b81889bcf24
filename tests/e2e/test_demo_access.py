"""What ``serve --demo`` prints for calling the API: the demo client's token and its lines.

Through the served composition's own use cases on a migrated database of the test's own (the
README tour runs the printed lines against a real server: tests/e2e/test_readme_tour.py).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from dishka import AsyncContainer
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.identity.application.authenticate_client import AuthenticateClient, ClientCredentials
from ledgerd.identity.application.demo_client import DEMO_CLIENT_ID, ProvideDemoClient
from ledgerd.identity.application.manage_clients import RevokeClient
from ledgerd.identity.domain.errors import IdentityErrorCode
from ledgerd.identity.domain.scopes import Scope
from ledgerd.kernel.errors import LedgerdError
from ledgerd.main.container import build_container
from ledgerd.main.demo_access import demo_access_lines
from ledgerd.main.migrations import MIGRATIONS
from ledgerd.main.settings import Settings
from ledgerd.platform.auth.access_tokens import AccessTokenVerifier

BASE = "http://127.0.0.1:8123"
EXPORT = re.compile(r"^export LEDGERD_TOKEN=(\S+)$")
AGAIN = re.compile(r"^again curl -s -u ledgerd-demo:(\S+) -d grant_type=client_credentials (\S+)$")


@pytest.fixture
async def container(sqlite_url: str) -> AsyncIterator[AsyncContainer]:
    built = build_container(Settings(database_url=sqlite_url))
    try:
        await MIGRATIONS.upgrade(await built.get(AsyncEngine))
        yield built
    finally:
        await built.close()


async def _authenticates(container: AsyncContainer, secret: str) -> bool:
    """Whether the demo client authenticates with ``secret`` (else INVALID_CLIENT, nothing else)."""
    authenticate = await container.get(AuthenticateClient)
    try:
        await authenticate(ClientCredentials(DEMO_CLIENT_ID, secret))
    except LedgerdError as error:
        return _refused_as_invalid_client(error)
    return True


def _refused_as_invalid_client(error: LedgerdError) -> bool:
    if error.code is not IdentityErrorCode.INVALID_CLIENT:
        raise error
    return False


async def test_the_lines_hold_a_token_for_the_demo_ledger_and_a_working_secret(
    container: AsyncContainer,
) -> None:
    lines = await demo_access_lines(container, "demo", BASE)

    exports = [match for line in lines if (match := EXPORT.match(line))]
    assert len(exports) == 1, lines
    verified = (await container.get(AccessTokenVerifier)).verify(exports[0].group(1))
    assert verified.principal.subject == DEMO_CLIENT_ID
    assert verified.principal.scopes == frozenset(Scope)
    assert verified.principal.ledgers == frozenset({"demo"})
    assert any(
        line.startswith("try   curl") and f"{BASE}/v1/ledgers/demo/accounts/" in line
        for line in lines
    ), lines
    again = [match for line in lines if (match := AGAIN.match(line))]
    assert len(again) == 1, lines
    assert again[0].group(2) == f"{BASE}/oauth2/token"
    assert await _authenticates(container, again[0].group(1))


async def test_each_run_re_keys_the_demo_client_and_adds_its_ledger(
    container: AsyncContainer,
) -> None:
    provide = await container.get(ProvideDemoClient)
    first = await provide("demo")
    second = await provide("sandbox")
    assert first is not None
    assert second is not None
    assert (first.client_id, second.client_id) == (DEMO_CLIENT_ID, DEMO_CLIENT_ID)
    assert first.secret != second.secret

    assert not await _authenticates(container, first.secret)
    assert await _authenticates(container, second.secret)
    client = await (await container.get(AuthenticateClient))(
        ClientCredentials(DEMO_CLIENT_ID, second.secret)
    )
    assert client.grant.ledgers == frozenset({"demo", "sandbox"})


async def test_a_revoked_demo_client_stays_revoked_and_no_token_is_printed(
    container: AsyncContainer,
) -> None:
    provide = await container.get(ProvideDemoClient)
    created = await provide("demo")
    assert created is not None
    assert await (await container.get(RevokeClient))(DEMO_CLIENT_ID)

    assert await provide("demo") is None
    lines = await demo_access_lines(container, "demo", BASE)
    assert lines == [
        "auth  no token: the demo client is revoked; make another: `ledgerd clients create`"
    ]
    assert not await _authenticates(container, created.secret)
